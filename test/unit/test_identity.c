/* The identity file and the rejoin file, as text and back: what they keep
 * survives the trip, and text that is not one of them is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "consensus/identity.h"
#include "lib/err.h"

static void test_identity_round_trip(void **state)
{
    (void)state;
    struct identity who, back;
    char text[IDENTITY_TEXT_SIZE];
    memset(&who, 0, sizeof who);
    for (int i = 0; i < TRANSPORT_CLUSTER_SIZE; i++) {
        who.cluster[i] = (uint8_t)(i * 17);
    }
    who.id = 281474976710655ULL;
    snprintf(who.peer, sizeof who.peer, "10.0.0.1:7001");
    identity_format(&who, text, sizeof text);
    assert_int_equal(identity_parse(text, &back), 0);
    assert_memory_equal(&who, &back, sizeof who);
    assert_int_equal(identity_parse("cluster 00 id 1 peer local", &back),
                     BERTH_ECORRUPT);
}

static void test_rejoin_round_trip(void **state)
{
    (void)state;
    struct identity_rejoin r, back;
    char text[IDENTITY_REJOIN_TEXT_SIZE];
    memset(&r, 0, sizeof r);
    r.replaces = 77;
    snprintf(r.peer, sizeof r.peer, "127.0.0.1:7002");
    r.n = 2;
    snprintf(r.members[0], sizeof r.members[0], "127.0.0.1:7001");
    snprintf(r.members[1], sizeof r.members[1], "[::1]:7003");
    int n = identity_rejoin_format(&r, text, sizeof text);
    assert_int_equal(n, (int)strlen(text));
    assert_string_equal(text, "replaces 77\npeer 127.0.0.1:7002\n"
                              "member 127.0.0.1:7001\nmember [::1]:7003\n");
    assert_int_equal(identity_rejoin_parse(text, &back), 0);
    assert_memory_equal(&r, &back, sizeof r);

    /* The members file: member lines alone. */
    assert_int_equal(identity_rejoin_parse("member a:1\n\nmember b:2", &back),
                     0);
    assert_int_equal(back.replaces, 0);
    assert_string_equal(back.peer, "");
    assert_int_equal(back.n, 2);
    assert_string_equal(back.members[1], "b:2");
    assert_int_equal(identity_rejoin_parse("", &back), 0);
    assert_int_equal(back.n, 0);
}

static void test_rejoin_keeps_the_first_members(void **state)
{
    (void)state;
    struct identity_rejoin back;
    char text[4096] = "";
    for (int i = 0; i < IDENTITY_MEMBERS_MAX + 3; i++) {
        char line[64];
        snprintf(line, sizeof line, "member 10.0.0.%d:7001\n", i);
        strcat(text, line);
    }
    assert_int_equal(identity_rejoin_parse(text, &back), 0);
    assert_int_equal(back.n, IDENTITY_MEMBERS_MAX);
    assert_string_equal(back.members[0], "10.0.0.0:7001");
}

static void test_rejoin_refuses_what_is_not_one(void **state)
{
    (void)state;
    struct identity_rejoin back;
    static const char *const bad[] = {
        "replaces 0\n",
        "replaces -1\n",
        "replaces 12x\n",
        "member\n",
        "member a b\n",
        "leader a:1\n",
        "replaces 18446744073709551616\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(identity_rejoin_parse(bad[i], &back), BERTH_ECORRUPT);
    }
    char longer[IDENTITY_PEER_MAX + 32];
    memset(longer, 'a', sizeof longer);
    memcpy(longer, "member ", 7);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(identity_rejoin_parse(longer, &back), BERTH_ECORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_round_trip),
        cmocka_unit_test(test_rejoin_round_trip),
        cmocka_unit_test(test_rejoin_keeps_the_first_members),
        cmocka_unit_test(test_rejoin_refuses_what_is_not_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
