"""What make install puts beside the binary cannot fall behind it: the man
page (written from --help at build time, scripts/manpage.py) has a section
for every command of `berth --help` and every option of every command, and
the bash completion (packaging/berth.bash) offers every command, every
subcommand of each group and every option of each command, asked of this
binary."""
import os
import re
import subprocess

from conftest import BERTH, ROOT

COMPLETION = os.path.join(ROOT, "packaging", "berth.bash")
MANPAGE = os.path.join(os.path.dirname(BERTH), "berth.1")


def help_of(*words):
    r = subprocess.run([BERTH] + list(words) + ["--help"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def commands():
    """Every command of `berth --help`, as word lists."""
    rows, on = [], False
    for line in help_of().split("\n"):
        if line == "Commands:":
            on = True
        elif on and line == "":
            break
        elif on and re.match(r"^  [a-z]", line):
            rows.append(line.split())
    out = []
    for words in rows:
        if words[0] == "help":
            continue
        group = "SUBCOMMAND" in help_of(words[0]).split("\n")[0]
        cmd = words[:2] if group else words[:1]
        if cmd not in out:
            out.append(cmd)
    return out


def options(cmd):
    return sorted(set(re.findall(r"^  (--[a-z0-9-]+)", help_of(*cmd), re.M)))


def complete(*words):
    """What the completion offers for the line words (the last the word
    being typed)."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); '
              'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _berth; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "-c", script, "bash", COMPLETION, BERTH] + list(words),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_commands_are_found():
    cmds = commands()
    # The parse itself: the commands a user meets first are there.
    for c in (["serve"], ["ship", "new"], ["ship", "ls"], ["fsck"], ["key", "rotate"]):
        assert c in cmds, cmds
    assert len(cmds) > 20


def test_man_page_has_every_command_and_option():
    with open(MANPAGE) as f:
        page = f.read()
    headings = re.findall(r'^\.SS "(.*)"$', page, re.M)
    plain = page.replace("\\-", "-")
    for cmd in commands():
        name = "berth " + " ".join(cmd)
        assert any(h.replace("\\-", "-") == name or
                   h.replace("\\-", "-").startswith(name + " ") for h in headings), \
            "%s has no section in berth.1" % name
        for opt in options(cmd):
            assert re.search(r"^\.B %s( |$)" % re.escape(opt), plain, re.M), \
                "%s %s is not in berth.1" % (name, opt)
    for section in ("NAME", "SYNOPSIS", "COMMANDS", "CLIENT OPTIONS", "EXIT STATUS", "FILES"):
        assert ".SH %s" % section in page


def test_completion_offers_every_command_subcommand_and_option():
    cmds = commands()
    top = complete("")
    for cmd in cmds:
        assert cmd[0] in top, (cmd, top)
    groups = {c[0] for c in cmds if len(c) == 2}
    assert {"ship", "cluster", "account", "token"} <= groups
    for g in groups:
        subs = complete(g, "")
        assert subs == {c[1] for c in cmds if len(c) == 2 and c[0] == g}, (g, subs)
    for cmd in cmds:
        offered = complete(*cmd, "--")
        for opt in options(cmd):
            assert opt in offered, (cmd, opt, offered)
    # Partial words, options before the command, and a path's value.
    assert complete("sh") == {"ship"}
    assert complete("--data", "/tmp", "ship", "ne") == {"new"}
    assert complete("ship", "new", "--pro") == {"--program"}
    assert "packaging/" in {w + "/" for w in complete("ship", "new", "--program", "pack")} or \
        any(w.endswith("packaging") for w in complete("ship", "new", "--program", ROOT + "/pack"))
