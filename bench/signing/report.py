"""Shared by bench/signing and bench/verify: the markdown file that both write
(docs/BENCHMARKS-evidence.md), one marked section each, so running one benchmark keeps the
other's latest results."""

import os

HEADER = """# Evidence benchmarks (signing cost, verification throughput)

Written by `bench/signing/run.sh` and `bench/verify/run.sh`; each run replaces its own section.
Numbers come from a shared 2-core build machine where other jobs run at the same time, so
every comparison is made within one invocation against a baseline measured alongside it.
"""


def replace_section(path, key, title, body):
    start, end = f"<!-- section:{key} -->", f"<!-- end:{key} -->"
    text = open(path).read() if os.path.exists(path) else HEADER
    block = f"{start}\n## {title}\n\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
