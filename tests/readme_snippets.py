"""Find the code blocks of a Markdown file and run them in order, as a newcomer pasting them would.

Used by ``tests/test_readme.py`` on the README and the documentation pages.
A block is a fenced ```` ```python ````, ```` ```bash ```` or
```` ```console ```` block; a ``<!-- skip-test: REASON -->`` line just above
its fence (blank lines allowed between) marks it as not runnable here, with
the reason shown in the source and in the test report.  Blocks with any other
language, or none (a directory tree, a command synopsis), are text, and so
are MyST directives (```` ```{toctree} ````).

A ``console`` block is a sample session: each ``$ COMMAND`` line runs (bash,
standard error merged into the output, as a terminal shows it) and the lines
below it, up to the next ``$``, are what it must print.  ``...`` in a sample
line stands for any text (a line of only ``...``: any lines), so a sample
can leave out what varies; everything else must be printed as written.

Run as a script (``python tests/readme_snippets.py BLOCKS.json RESULTS.json``)
it executes the blocks in one IPython ``InteractiveShell`` -- so Python
blocks share one namespace and ``%%mempamal`` cells go through the real
magic -- and bash and console blocks in the same folder, then writes
one ``{"key", "ok", "error", "output"}`` per block (key: ``SOURCE:LINE``).
"""

import json
import re
import sys
from dataclasses import asdict, dataclass

RUNNABLE = {"python": "python", "py": "python", "ipython": "python", "bash": "bash", "sh": "bash",
            "shell": "bash", "console": "console"}
# a fence, its language (or a MyST directive such as {include}) and the directive's argument
_FENCE = re.compile(r"^(`{3,})\s*([^\s`]*)(\s+\S.*)?$")
_SKIP = re.compile(r"^\s*<!--\s*skip-test:\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    line: int            # 1-based line of the opening fence
    language: str        # as written after the fence ('' for none)
    code: str
    skip: str = None     # the reason of a skip-test marker, if any
    source: str = "README.md"  # the file, relative to the repository

    @property
    def key(self):
        return f"{self.source}:{self.line}"

    @property
    def runner(self):
        return RUNNABLE.get(self.language.lower())


def find_blocks(text, source="README.md"):
    """Every fenced block of ``text`` (the file ``source``), in order, with its skip-test reason."""
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
        blocks.append(Block(start + 1, language, "\n".join(body) + "\n", marker.group(1) if marker else None,
                            source))
        i += 1
    return blocks


def console_sessions(code):
    """``[(command, sample output), ...]`` of a console block."""
    sessions = []
    for line in code.splitlines():
        if line.startswith("$ "):
            sessions.append([line[2:], []])
        elif sessions:
            sessions[-1][1].append(line.rstrip())
        elif line.strip():
            raise ValueError(f"console block: output before any '$ ' command: {line!r}")
    return [(command, "\n".join(sample).strip("\n")) for command, sample in sessions]


def sample_matches(sample, output):
    """Whether ``output`` is what ``sample`` shows (``...``: any text; trailing blanks ignored)."""
    output = "\n".join(line.rstrip() for line in output.splitlines()).strip("\n")
    pattern = ".*?".join(re.escape(part) for part in sample.split("..."))
    return re.fullmatch(pattern, output, re.DOTALL) is not None


def _run_console(code):
    """Run each command of a console block; an error text when one fails or prints other than its sample."""
    import subprocess

    outputs = []
    for command, sample in console_sessions(code):
        done = subprocess.run(["bash", "-c", command + " 2>&1"], capture_output=True, text=True)
        outputs.append(f"$ {command}\n{done.stdout}")
        if done.returncode != 0:
            return f"exit {done.returncode} from {command!r}:\n{done.stdout}", outputs
        if sample and not sample_matches(sample, done.stdout):
            return f"{command!r} printed:\n{done.stdout}\nbut the sample says:\n{sample}", outputs
    return None, outputs


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
        print(f"--- {block['source']} line {block['line']} ({block['runner']})", flush=True)
        key = f"{block['source']}:{block['line']}"
        if block["runner"] == "python":
            outcome = shell.run_cell(block["code"], store_history=False)
            error = outcome.error_before_exec or outcome.error_in_exec
            text = None if error is None else "".join(traceback.format_exception(error))
            results.append({"key": key, "ok": error is None, "error": text, "output": ""})
        elif block["runner"] == "console":
            error, outputs = _run_console(block["code"])
            results.append({"key": key, "ok": error is None, "error": error, "output": "".join(outputs)})
        else:
            done = subprocess.run(["bash", "-e", "-c", block["code"]], capture_output=True, text=True)
            ok = done.returncode == 0 and "Traceback" not in done.stderr
            results.append({"key": key, "ok": ok, "output": done.stdout,
                            "error": None if ok else f"exit {done.returncode}\n{done.stderr}"})
    return results


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        todo = json.load(handle)
    with open(sys.argv[2], "w") as handle:
        json.dump(_run_all(todo), handle)
