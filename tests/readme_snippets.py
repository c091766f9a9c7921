"""Find the code blocks of a Markdown file and run them in order, as a newcomer pasting them would.

Used by ``tests/test_readme.py``.  A block is a fenced ```` ```python ```` or
```` ```bash ```` block; a ``<!-- skip-test: REASON -->`` line just above its
fence (blank lines allowed between) marks it as not runnable here, with the
reason shown in the README source and in the test report.  Blocks with any
other language, or none (a directory tree, a command synopsis), are text.

Run as a script (``python tests/readme_snippets.py BLOCKS.json RESULTS.json``)
it executes the blocks in one IPython ``InteractiveShell`` -- so Python
blocks share one namespace and ``%%mempamal`` cells go through the real
magic -- and bash blocks with ``bash -e`` in the same folder, then writes
one ``{"line", "ok", "error", "output"}`` per block.
"""

import json
import re
import sys
from dataclasses import asdict, dataclass

RUNNABLE = {"python": "python", "py": "python", "ipython": "python", "bash": "bash", "sh": "bash",
            "shell": "bash"}
_FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)\s*$")
_SKIP = re.compile(r"^\s*<!--\s*skip-test:\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    line: int            # 1-based line of the opening fence
    language: str        # as written after the fence ('' for none)
    code: str
    skip: str = None     # the reason of a skip-test marker, if any

    @property
    def runner(self):
        return RUNNABLE.get(self.language.lower())


def find_blocks(text):
    """Every fenced block of ``text``, in order, with its skip-test reason."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, language, start = opening.group(1), opening.group(2), i
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        marker = _SKIP.match(lines[j]) if j >= 0 else None
        i += 1
        body = []
        while i < len(lines) and lines[i].rstrip() != fence:
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"unclosed code block at line {start + 1}")
        blocks.append(Block(start + 1, language, "\n".join(body) + "\n", marker.group(1) if marker else None))
        i += 1
    return blocks


def _run_all(blocks):
    import subprocess
    import traceback

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "mempamal")
    results = []
    for block in blocks:
        print(f"--- README line {block['line']} ({block['runner']})", flush=True)
        if block["runner"] == "python":
            outcome = shell.run_cell(block["code"], store_history=False)
            error = outcome.error_before_exec or outcome.error_in_exec
            text = None if error is None else "".join(traceback.format_exception(error))
            results.append({"line": block["line"], "ok": error is None, "error": text, "output": ""})
        else:
            done = subprocess.run(["bash", "-e", "-c", block["code"]], capture_output=True, text=True)
            ok = done.returncode == 0 and "Traceback" not in done.stderr
            results.append({"line": block["line"], "ok": ok, "output": done.stdout,
                            "error": None if ok else f"exit {done.returncode}\n{done.stderr}"})
    return results


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        todo = json.load(handle)
    with open(sys.argv[2], "w") as handle:
        json.dump(_run_all(todo), handle)
