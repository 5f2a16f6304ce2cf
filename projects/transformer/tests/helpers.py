"""A small parallel corpus the tests write themselves, in the TSV format `prepare --tsv` reads."""

from __future__ import annotations

import os

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.basename(PROJECT_DIR)  # "transformer", or the copy's name
CONFIGS = os.path.join(PROJECT_DIR, "configs")

_OBJECTS = [("file", "Datei"), ("folder", "Ordner"), ("window", "Fenster"), ("printer", "Drucker"),
            ("account", "Konto"), ("device", "Gerät"), ("image", "Bild"), ("message", "Nachricht"),
            ("server", "Server"), ("key", "Schlüssel")]
_TEMPLATES = [("could not open {en}", "{de} konnte nicht geöffnet werden"),
              ("Delete the {en}?", "{de} löschen?"), ("Select a {en}", "{de} auswählen"),
              ("The {en} '%s' is missing", "{de} »%s« fehlt"), ("New {en}", "Neu: {de}"),
              ("Rename {en} to %s", "{de} in %s umbenennen")]


def pairs() -> list[tuple[str, str]]:
    """60 distinct English->German message pairs in the style of the gettext catalogs, placeholders included."""
    return [(en.format(en=o_en), de.format(de=o_de)) for en, de in _TEMPLATES for o_en, o_de in _OBJECTS]


def write_tsv(path: str) -> str:
    """Writes `pairs()` as source<TAB>target lines (Anki/Tatoeba style); returns the path."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{en}\t{de}\n" for en, de in pairs())
    return path
