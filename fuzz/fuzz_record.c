/* libFuzzer target for the log entry and event record decoders: whatever a
 * damaged or hostile log holds must decode to an error, never to a crash. */
#include <stddef.h>
#include <stdint.h>

#include "core/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t type;
    struct record_event ev;
    struct record_ship_new sn;
    struct record_snapshot snap;
    struct record_ship_batch batch;
    uint64_t sid;

    record_decode_event(data, size, &ev);
    if (record_entry_type(data, size, &type) != 0) {
        return 0;
    }
    record_decode_ship_new(data, size, &sn);
    record_decode_snapshot(data, size, &snap);
    record_decode_ship_remove(data, size, &sid);
    if (record_decode_ship_batch(data, size, &batch) == 0) {
        /* Every name a decoded batch can make must fit or be refused. */
        char name[64];
        for (uint32_t i = 0; i < batch.count && i < 16; i++) {
            record_ship_batch_name(&batch, i, name, sizeof name);
        }
    }
    size_t off = 0;
    const uint8_t *rec;
    size_t len;
    for (int i = 0; i < 100000; i++) {
        int rv = record_events_next(data, size, &off, &rec, &len);
        if (rv != 0) {
            break;
        }
        record_decode_event(rec, len, &ev);
    }
    return 0;
}
