"""CoNLL-U reading for taggers: sentences of (word, UPOS tag), parsed by the `conllu` package.

    sentences = read_conllu(path)          # [(["I", "work", ...], ["PRON", "VERB", ...]), ...]

Multiword-token lines (ids like `3-4`, the surface form "don't" whose parts are `do` and `n't`)
and empty nodes (ids like `8.1`, enhanced-dependency ellipsis) are skipped: the syntactic words
are what carry tags. Every error names the file and the line and stops at the first one.
"""
from __future__ import annotations

from ..paths import read_user_text

UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
             "PUNCT", "SCONJ", "SYM", "VERB", "X")   # the 17 Universal POS tags (UD v2)
N_COLUMNS = 10  # ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC


def read_conllu(path, tagset=UPOS_TAGS) -> list[tuple[list[str], list[str]]]:
    """Sentences of a CoNLL-U file as (words, UPOS tags). A missing, empty or malformed file, a line
    without 10 tab-separated columns or a tag outside `tagset` raises one error naming file and line."""
    import conllu

    text = read_user_text(path, "CoNLL-U file")
    where = f"CoNLL-U file {str(path)!r}"
    _check_lines(text, where, set(tagset))
    try:
        parsed = conllu.parse(text)
    except conllu.exceptions.ParseException as e:
        raise ValueError(f"{where} could not be parsed: {e}") from None
    sentences = []
    for sentence in parsed:
        words, tags = [], []
        for token in sentence:
            if not isinstance(token["id"], int):    # (3, '-', 4) multiword token, (8, '.', 1) empty node
                continue
            words.append(token["form"])
            tags.append(token["upos"])
        if words:
            sentences.append((words, tags))
    if not sentences:
        raise ValueError(f"{where} holds no sentences")
    return sentences


def _check_lines(text: str, where: str, tagset: set) -> None:
    """Each token line: 10 tab-separated columns, an integer id (or a range / decimal id), a non-empty
    form and, for syntactic words, a tag from the tag set."""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != N_COLUMNS:
            raise ValueError(f"{where}, line {n}: expected {N_COLUMNS} tab-separated columns, got {len(cols)}")
        id_, form, upos = cols[0], cols[1], cols[3]
        if "-" in id_ or "." in id_:                 # multiword token or empty node: not tagged here
            continue
        if not id_.isdigit():
            raise ValueError(f"{where}, line {n}: the ID column must be an integer, got {id_!r}")
        if not form:
            raise ValueError(f"{where}, line {n}: the FORM column is empty")
        if upos not in tagset:
            raise ValueError(f"{where}, line {n}: unknown UPOS tag {upos!r} (expected one of {', '.join(sorted(tagset))})")
