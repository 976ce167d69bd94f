"""The claims check: every measured or computed quantity and every comparison in the book's prose and
solutions comes from a computation (a myst-nb glue), and every repository file a source names exists.

The rule (also in book/how_to_use.md, "How the claims are checked"), applied to the markdown cells of every
chapter notebook and of book/index.ipynb:

Markdown is split into *solution blocks* (```{solution}``` fences), *exercise blocks* (```{exercise}```
fences: the question, whose numbers are the given data), other fenced blocks (code, exempt) and *prose*
(everything else). Before numbers are looked for, these are set aside:

- glue roles ({glue:text}`name`, the computed values), other roles ({cite}, {doc}, {ref}...), inline code,
  links and URLs, headings (section titles);
- a sentence that cites a paper ({cite}`...`) or names a published table by number ("the paper's Table 4
  prints 70.6"): it quotes published numbers, with their source;
- references to numbered things: "Table 3", "Tables 1-4", "eq. (2)", "sec. 3.2", "chapter 7", "step 2",
  "arXiv 1905.02244v5", a year (1900-2099);
- names with digits in them: v1, G2, B0, float32, int8, top-1, ResNet-50, and shapes such as 3x3, 224x224
  or 7x7x1024 (given data: a layer's or an input's shape); a network named by its width multiplier
  ("width 1.4", "0.75 MobileNet-224", "the 0.50-160 network", "the 0.25 rows");
- inside math ($...$, $$...$$) integers (the constants of a formula, exponents, given sizes) and settings
  of a hyper-parameter ("\\alpha = 0.25", "d = 1.1"); any other decimal inside math is a quantity and is
  flagged.

What is left is flagged as follows.

- In a solution block, every number (unless it also appears in the question of that exercise, the given
  data), and every comparison word (COMPARISONS) in a sentence that holds no glue.
- In prose, every number that states a quantity: a decimal (0.81), a percentage (95%), a number with
  thousands separators (462,422,016), a count in millions or thousands (300M, 3.5K) or a ratio (2.25x);
  and a timing comparison (TIMING_COMPARISONS: faster, slower, ahead...) in a sentence that holds no glue.
  Bare integers in prose are allowed: they are the set-up (batch 32, ten units, 256 MiB arrays).

A flag is silenced only by an entry of ALLOWLIST (below), each with its reason, or, for flags that predate
the check, by a line of tests/claims_debt.txt (a list that may only shrink).

Sources: a string in a notebook, a data file (src/sepconv/data/) or a book page that names a repository
file (a path under book/, chapters/, src/, tests/, tools/, shared/, or sepconv/) must name a file the
repository has.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Words that state a comparison: in a solution, the sentence must hold a glued value.
COMPARISONS = re.compile(
    r"\b(faster|slower|quicker|ahead|behind|closer|farther|rises|rise|falls|fall|within the spread|beats?|"
    r"outperforms?|outruns?|better|worse|above|below|exceeds?|times as fast|times as long)\b", re.I)
#: Timing comparisons: in prose too, the sentence must hold a glued value (the paired-rounds wording).
TIMING_COMPARISONS = re.compile(r"\b(faster|slower|quicker|ahead of|behind|beats?|outruns?|times as fast|"
                                r"times as long)\b", re.I)

_ROLE = re.compile(r"\{[\w:.-]+\}`[^`]*`")
_GLUE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")
_CODE = re.compile(r"``?[^`]+``?")
_LINK = re.compile(r"\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")
_MATH2 = re.compile(r"\$\$.*?\$\$", re.S)
_MATH1 = re.compile(r"\$[^$\n]*\$")
_NUMBERED = (r"(?:Tables?|tables?|Fig\.|Figures?|figures?|[Ee]qs?\.|[Ee]quations?|[Ss]ec\.|[Ss]ections?|"
             r"[Cc]hapters?|§|[Aa]ppendix|[Ss]teps?|pp?\.|[Ll]ines?|arXiv|[Aa]lgorithm|[Cc]ells?|[Ii]ssue)")
_NUMBER_TAIL = r"[\s:]*\(?\d+(?:\.\d+)*[a-z\d]*\)?"
_REFERENCE = re.compile(_NUMBERED + _NUMBER_TAIL + r"(?:\s*(?:,|-|–|and|to|or)" + _NUMBER_TAIL + r")*")
#: A sentence that quotes a published table by its number ("the paper's Table 4 prints ...") or cites a paper.
_PUBLISHED = re.compile(r"\b(?:Tables?|tables?) \d+")
#: A network named by its width multiplier (and resolution): "width 1.4", "alpha = 0.25", "0.75 MobileNet-224",
#: "the 0.50-160 network", "MobileNet 1.0-224", "the 0.25 rows", "Small 1.0", "widths 0.75, 1.0 and 1.25":
#: given data, like a layer's shape.
_NETWORK_NAME = re.compile(r"(?:\b(?:Small|Large|width|widths|multiplier|alpha|α)\s*(?:=\s*)?\d+(?:\.\d+)?"
                           r"(?:(?:,|, and| and| or) \d+(?:\.\d+)?)*)"
                           r"|(?:(?<![\w.])\d\.\d+-\d+\b)"
                           r"|(?:(?<![\w.])\d\.\d+(?= (?:MobileNet|MobileNets|network|networks|row|rows|model|models)\b))")
#: Inside math, a hyper-parameter set to a value ("\\alpha = 0.25", "d = 1.1"): the setting, given data.
_MATH_SETTING = re.compile(r"(?:\\(?:alpha|beta|gamma|rho|phi)|\b[dwr])\s*=\s*\d+\.\d+")
_YEAR = re.compile(r"(?<![\w.,])(?:19|20)\d\d(?![\w.%]|,\d)")
_WORD_WITH_DIGITS = re.compile(r"(?<![\d.,])\b(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[A-Za-z\d][\w-]*")
_QUANTITY_SUFFIX = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:[MKGB]\b|\s*x(?![\w])|\s*×(?!\s*\d)|-fold)")
_NUMBER = re.compile(r"(?<![\w.])\d(?:[\d,]*\d)?(?:\.\d+)?(?:\s*%)?")
_ABBREVIATIONS = ("eq.", "Eq.", "eqs.", "sec.", "Sec.", "Fig.", "e.g.", "i.e.", "cf.", "vs.", "p.", "pp.", "al.")


@dataclass(frozen=True)
class Flag:
    notebook: str
    cell: int
    kind: str  # "unglued number", "unsupported comparison", "unknown glue", "missing file"
    text: str  # the token
    sentence: str

    def __str__(self) -> str:
        return f"{self.notebook} cell {self.cell}: {self.kind} {self.text!r} in: {self.sentence}"


def sentences(paragraph: str) -> list[str]:
    """Split at a full stop followed by a capital, a bracket or a role, not after an abbreviation and
    not inside math."""
    masked = _MATH1.sub(lambda m: "x" * len(m.group()), _MATH2.sub(lambda m: "x" * len(m.group()), paragraph))
    parts, start = [], 0
    for m in re.finditer(r"(?<=[.!?])\s+(?=[A-Z*({`$])", masked):
        before = paragraph[start:m.start()]
        if before.endswith(_ABBREVIATIONS):
            continue
        parts.append(paragraph[start:m.start()])
        start = m.end()
    parts.append(paragraph[start:])
    return [p for p in parts if p.strip()]


def _set_aside(text: str) -> str:
    text = _CODE.sub(" C ", _ROLE.sub(" G ", text))
    return _URL.sub(" ", _LINK.sub("] ", text))


def _numbers(text: str) -> set[str]:
    """Every digit run in ``text`` (inside shapes, math and words too), normalised: the question's given data."""
    return {n.replace(",", "").rstrip("%").strip() for n in re.findall(r"\d[\d,]*(?:\.\d+)?%?", text)}


def unglued_numbers(sentence: str, strict: bool, given: set[str] = frozenset()) -> list[str]:
    """The quantities of ``sentence`` that no glue, reference, name, shape or formula accounts for."""
    if "{cite" in sentence or _PUBLISHED.search(sentence):
        return []
    s = _set_aside(sentence)
    found = []
    for m in list(_MATH2.finditer(s)) + list(_MATH1.finditer(s)):
        found += re.findall(r"(?<![\w.])\d+\.\d+", _MATH_SETTING.sub(" ", m.group()))
    s = _MATH1.sub(" ", _MATH2.sub(" ", s))
    s = _YEAR.sub(" ", _REFERENCE.sub(" ", _NETWORK_NAME.sub(" ", s)))
    found += [m.group() for m in _QUANTITY_SUFFIX.finditer(s)]
    s = _WORD_WITH_DIGITS.sub(" ", _QUANTITY_SUFFIX.sub(" ", s))
    for m in _NUMBER.finditer(s):
        token = m.group()
        if strict or "." in token or "%" in token or "," in token:
            found.append(token)
    return [t for t in found if not (strict and _numbers(t) <= given)]


def unsupported_comparisons(sentence: str, strict: bool) -> list[str]:
    """Comparison words of a sentence that holds no glued value (solutions: any; prose: timing)."""
    if "{glue" in sentence or "{cite" in sentence:
        return []
    pattern = COMPARISONS if strict else TIMING_COMPARISONS
    plain = _MATH1.sub(" ", _MATH2.sub(" ", _set_aside(sentence)))
    return [m.group() for m in pattern.finditer(plain)]


_FENCE = re.compile(r"^(`{3,}|:{3,})\{(solution|exercise)\}[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)
_OTHER_FENCE = re.compile(r"^(`{3,})[^\n]*\n.*?^\1[ \t]*$", re.S | re.M)


def blocks(markdown: str) -> list[tuple[str, str, str]]:
    """``(kind, label, text)`` for the solution, exercise and prose parts of one markdown cell."""
    out, pos = [], 0
    for m in _FENCE.finditer(markdown):
        out.append(("prose", "", markdown[pos:m.start()]))
        body = m.group(3)
        options = dict(re.findall(r"^:(\w+):\s*(.*)$", body, re.M))
        label = options.get("label", "") if m.group(2) == "exercise" else m.group(0).split("\n", 1)[0].split("}", 1)[1].strip()
        text = "\n".join(line for line in body.splitlines() if not re.match(r"^:\w+:", line))
        out.append((m.group(2), label, text))
        pos = m.end()
    out.append(("prose", "", markdown[pos:]))
    return [(kind, label, _OTHER_FENCE.sub(" ", text) if kind == "prose" else text) for kind, label, text in out]


_GATED = re.compile(r"^(`{3,}|:{3,})\{solution-(start|end)\}[ \t]*([^\s`]*)[^\n]*\n.*?^\1[ \t]*$", re.S | re.M)


def gated_blocks(markdown: str, open_label: str | None) -> tuple[list[tuple[str, str, str]], str | None]:
    """:func:`blocks` for a cell of a notebook whose solutions may be *gated*: sphinx-exercise's
    ``{solution-start} LABEL`` ... ``{solution-end}`` directives, between which any number of cells (code
    that runs, markdown that reports its result) form the solution. ``open_label`` is the label of a
    solution left open by an earlier cell (or None); returns the parts and the label left open after this
    cell. Markdown inside a gated solution is solution text: it is checked as strictly as a
    ``{solution}`` block."""
    out, pos = [], 0
    for m in _GATED.finditer(markdown):
        text = markdown[pos:m.start()]
        out += [("solution", open_label, text)] if open_label is not None else blocks(text)
        open_label = m.group(3) if m.group(2) == "start" else None
        pos = m.end()
    text = markdown[pos:]
    out += [("solution", open_label, text)] if open_label is not None else blocks(text)
    return out, open_label


def glued_names(nb: dict) -> set[str]:
    return {o["metadata"]["scrapbook"]["name"] for c in nb["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {})}


def check_notebook(path: Path, root: Path = ROOT) -> list[Flag]:
    """Every flag of the claims rule in one notebook (see the module docstring)."""
    nb = json.loads(path.read_text())
    name = str(path.relative_to(root)) if path.is_relative_to(root) else path.name
    glued = glued_names(nb)
    flags = []
    questions = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for kind, label, text in blocks("".join(cell["source"])):
                if kind == "exercise":
                    questions[label] = _numbers(text)
    open_label = None
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"])
        for glue in _GLUE.findall(source):
            if glue not in glued:
                flags.append(Flag(name, i, "unknown glue", glue, glue))
        parts, open_label = gated_blocks(source, open_label)
        for kind, label, text in parts:
            if kind == "exercise":
                continue
            strict = kind == "solution"
            for paragraph in re.split(r"\n\s*\n", text):
                if paragraph.lstrip().startswith("#"):
                    continue
                for sentence in sentences(paragraph):
                    short = " ".join(sentence.split())
                    for token in unglued_numbers(sentence, strict, questions.get(label, set())):
                        flags.append(Flag(name, i, "unglued number", token, short))
                    for word in unsupported_comparisons(sentence, strict):
                        flags.append(Flag(name, i, "unsupported comparison", word, short))
    return flags


#: Top-level folders of the repository a source may name (``sepconv/`` is the package under src/).
_REPO_PATH = re.compile(r"(?<![\w/.-])((?:book|chapters|src|tests|tools|shared|sepconv)/[\w./-]*[\w-]\.[A-Za-z]{1,5})\b")


def missing_files(text: str, root: Path = ROOT) -> list[str]:
    """Repository paths named in ``text`` that the repository does not hold."""
    missing = []
    for path in _REPO_PATH.findall(text):
        candidates = [root / path] + ([root / "src" / path] if path.startswith("sepconv/") else [])
        if not any(c.exists() for c in candidates):
            missing.append(path)
    return missing


def source_files(root: Path = ROOT) -> list[Path]:
    """The files whose strings name sources: notebooks, data files and book pages."""
    files = sorted((root / "chapters").glob("*.ipynb")) + [root / "book" / "index.ipynb"]
    files += sorted((root / "book").rglob("*.md")) + sorted((root / "src" / "sepconv" / "data").rglob("*"))
    return [f for f in files if f.is_file() and f.suffix in {".ipynb", ".md", ".json", ".csv", ".txt"}]


#: Flags the rule raises on text that is right as it stands; each with its reason.
ALLOWLIST = {
    "unsupported comparison 'faster' in: With peak compute $P$ (FLOP/s) and memory bandwidth $B$ (byte/s), it cannot run faster than":
        "the definition of the roofline bound, not a measurement",
    "unsupported comparison 'behind' in: Every chapter opens with learning objectives and prerequisites and ends with exercises whose solutions":
        "'hidden behind a toggle': not a comparison",
    "unsupported comparison 'faster' in: A ratio above 1 means the denominator, the program named second, is the faster one.":
        "the definition of the ratio's direction",
    "unsupported comparison 'faster' in: The ratio of each round compares measurements taken moments apart, so a slow spell of the machine":
        "describes the sign test, states no result",
    "unsupported comparison 'Faster' in: Tables 13 (SSD and Faster-RCNN detectors) and 14 (FaceNet distillation) are not checked":
        "the name Faster-RCNN",
    "unsupported comparison 'faster' in: Data that stays in the caches moves faster, so a layer whose tensors fit in cache can exceed":
        "why a measured rate can exceed the roofline; the tables after it show the measurements",
    "unsupported comparison 'faster' in: * **Other processors have two roofs.** GPUs and TPUs multiply matrices on dedicated units":
        "a property of other hardware, not measured in this book",
    "unsupported comparison 'faster' in: - draw MBConv, Fused-MBConv and the ConvNeXt block and compute their costs;":
        "a learning objective: states what the chapter tests, no result",
    "unsupported comparison 'beat' in: Whether shifted multiply-adds beat a GPU's grouped convolution is an open question":
        "poses a question, states no result",
}

DEBT_HEADER = """# Claims the check of tests/claims.py flags and that are not yet glued (recorded when the check was introduced,
# issue 28). The list may only shrink: test_claims_debt_is_current fails on a line that no longer occurs.
# Glue the number (or quote it with its source), then delete its line. One flag per line: notebook: kind 'token' in: sentence.
# `python tests/claims.py` lists the current flags; `--write-debt` rewrites this file (review the diff: it must only shrink).
"""

#: Flags recorded when the check was introduced (issue 28) and not yet rewritten as glue: the list may only
#: shrink (test_claims_debt_is_current fails on an entry that no longer occurs, so a fix must delete it).
DEBT_FILE = Path(__file__).with_name("claims_debt.txt")


def key(flag: Flag) -> str:
    return f"{flag.kind} {flag.text!r} in: {flag.sentence}"[:160]


def debt() -> set[str]:
    if not DEBT_FILE.exists():
        return set()
    return {line for line in DEBT_FILE.read_text().splitlines() if line and not line.startswith("#")}


def silenced(flag: Flag) -> bool:
    k = key(flag)
    return any(k.startswith(a[:160]) or a.startswith(k) for a in ALLOWLIST) or f"{flag.notebook}: {k}" in debt()


def notebooks(root: Path = ROOT) -> list[Path]:
    """Every chapter (a new one is checked as soon as it exists) and the landing page."""
    return sorted((root / "chapters").glob("*.ipynb")) + [root / "book" / "index.ipynb"]


if __name__ == "__main__":  # python tests/claims.py [--write-debt]: list the flags no allowlist entry silences
    import sys

    found = sorted({f"{f.notebook}: {key(f)}" for nb in notebooks() for f in check_notebook(nb)
                    if not any(key(f).startswith(a[:160]) or a.startswith(key(f)) for a in ALLOWLIST)})
    if "--write-debt" in sys.argv:
        DEBT_FILE.write_text(DEBT_HEADER + "\n".join(found) + "\n")
    print("\n".join(found))
