#!/usr/bin/env python3
"""Write berth's man page (berth.1) from the berth binary's own help, so
that the page cannot say less or other than `berth --help` and `berth
COMMAND --help`: the template (packaging/berth.1.in) holds what help does
not (files, environment, the service, see also) and @COMMANDS@ and
@CLIENT_OPTIONS@, which this fills.

usage: manpage.py BERTH TEMPLATE OUT
"""
import re
import subprocess
import sys


def help_text(berth, *words):
    r = subprocess.run([berth] + list(words) + ["--help"], capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        sys.exit("manpage: berth %s --help exited %d: %s"
                 % (" ".join(words), r.returncode, r.stderr))
    return r.stdout


def commands(berth):
    """Every command of `berth --help`, in its order: a list of word
    lists (["serve"], ["ship", "new"], ...)."""
    text = help_text(berth)
    rows = []
    listing = False
    for line in text.split("\n"):
        if line == "Commands:":
            listing = True
        elif listing and line == "":
            break
        elif listing and re.match(r"^  [a-z]", line):
            rows.append(line.split())
    if not rows:
        sys.exit("manpage: no commands in berth --help")
    groups = {}
    out = []
    for words in rows:
        first = words[0]
        if first == "help":
            continue
        if first not in groups:
            groups[first] = "SUBCOMMAND" in help_text(berth, first).split("\n")[0]
        cmd = words[:2] if groups[first] else words[:1]
        if cmd not in out:
            out.append(cmd)
    return out


def roff(text):
    """Escape text for roff: backslashes, dashes, and a dot or quote that
    would start a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.M)


def parse(text):
    """Split a command's help into its usage line, its paragraphs and its
    option sections: (usage, [paragraph], [(title, [(left, help)])])."""
    lines = text.rstrip("\n").split("\n")
    usage = lines[0][len("usage: "):]
    about, sections, para = [], [], []
    i = 1
    while i < len(lines) and not (lines[i].endswith(":") and not lines[i].startswith(" ")) \
            and not lines[i].startswith("  -"):
        if lines[i] == "":
            if para:
                about.append(" ".join(para))
            para = []
        else:
            para.append(lines[i].strip())
        i += 1
    if para:
        about.append(" ".join(para))
    title, rows = None, []
    for line in lines[i:]:
        if line == "":
            continue
        if not line.startswith(" "):
            if rows:
                sections.append((title, rows))
            title, rows = line.rstrip(":"), []
        elif line.startswith(" " * 25) and rows:
            rows[-1][1] += " " + line.strip()
        else:
            m = re.match(r"^  (\S.*?)(?:  +(\S.*))?$", line)
            rows.append([m.group(1), m.group(2) or ""])
    if rows:
        sections.append((title, rows))
    return usage, about, sections


def option_rows(rows):
    out = []
    for left, help_ in rows:
        names, _, value = left.partition(" ")
        out.append(".TP\n.B %s%s\n%s" % (roff(names),
                                          " \\fI%s\\fR" % roff(value) if value else "",
                                          roff(help_)))
    return "\n".join(out)


def main():
    berth, template, out = sys.argv[1:4]
    parts = []
    client = None
    for cmd in commands(berth):
        usage, about, sections = parse(help_text(berth, *cmd))
        parts.append('.SS "%s"' % roff(usage))
        parts.append("\n.PP\n".join(roff(p) for p in about))
        takes_client = False
        for title, rows in sections:
            if title and title.startswith("Finding the host"):
                takes_client = True
                client = client or [r for r in rows if not r[0].startswith("-h")]
                continue
            rows = [r for r in rows if not r[0].startswith("-h")]
            if rows:
                parts.append(option_rows(rows))
        if takes_client:
            parts.append(".PP\nTakes the client options (CLIENT OPTIONS).")
    with open(template) as f:
        page = f.read()
    page = page.replace("@COMMANDS@", "\n".join(parts))
    page = page.replace("@CLIENT_OPTIONS@", option_rows(client or []))
    with open(out, "w") as f:
        f.write(page)


main()
