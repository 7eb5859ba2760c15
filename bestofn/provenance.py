"""What a run directory can truthfully say about how its solutions were made.

A run of ``bestofn run`` knows every setting: ``config.yaml`` holds what generated and scored its solutions.
Completions imported with ``bestofn import`` were made elsewhere: ``config.yaml`` must still hold a value for
every key (so the run directory loads like any other), but for the generation settings those values are
defaults, not facts. ``manifest.json``'s ``imported_from`` (written by :mod:`bestofn.importer`) records the
source and the few settings the import command was told (``stated``); every other generation setting, and how
the problems were chosen, is "not stated". The report, the Hub card, ``bestofn push --dry-run`` and
``results.json`` all word provenance through :class:`Provenance`, so none of them can invent it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io import read_json

NOT_STATED = "not stated"
SUBSET = "subset"  # not a config key: how the problems were chosen (bestofn draws them with seed, levels, num_problems)
# The settings behind the solutions, as people read them; for an import, each is known only if the input stated it.
GENERATION_SETTINGS = {
    "generator": "generator", "prm": "reward model", "temperature": "temperature", "top_p": "top-p",
    "max_new_tokens": "max new tokens", "seed": "seed", "backend": "backend", "system_prompt": "system prompt",
    "user_template": "user prompt", SUBSET: "the problem subset",
}


@dataclass(frozen=True)
class Provenance:
    """Where a run's solutions came from: ``imported`` is manifest.json's ``imported_from`` (None: made by
    ``bestofn run``); ``scored_by_bestofn`` is whether bestofn itself scored them (it recorded the PRM it loaded)."""

    imported: dict[str, Any] | None = None
    scored_by_bestofn: bool = True
    models: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Provenance:
        models = manifest.get("models", {})
        return cls(manifest.get("imported_from"), "prm" in models, models)

    @classmethod
    def read(cls, run_dir: str | Path) -> Provenance:
        path = Path(run_dir) / "manifest.json"
        return cls.from_manifest(read_json(path) if path.is_file() else {})

    @property
    def is_imported(self) -> bool:
        return self.imported is not None

    def stated(self, key: str) -> bool:
        """Whether the setting ``key`` is known: always for ``bestofn run``; for an import, if the input stated it
        (or, for the PRM, if bestofn rescored the imported solutions with a PRM it loaded)."""
        if not self.is_imported:
            return True
        if key == "prm" and self.scored_by_bestofn:
            return True
        return (self.imported.get("stated") or {}).get(key) is not None

    def setting(self, key: str, value: Any) -> str:
        """``value`` as text, or "not stated" when the run does not know it."""
        return str(value) if self.stated(key) else NOT_STATED

    def not_stated(self) -> list[str]:
        """The keys of :data:`GENERATION_SETTINGS` the run does not know, in that order."""
        return [key for key in GENERATION_SETTINGS if not self.stated(key)]

    @property
    def source(self) -> str | None:
        """The imported file or Hub dataset (None: not imported)."""
        return self.imported.get("source") if self.imported else None

    def summary(self) -> str:
        """One sentence: what was imported from where, and what the input did not state ("" when not imported)."""
        if not self.is_imported:
            return ""
        imp = self.imported
        where = ", ".join(f"{k} {imp[k]}" for k in ("split", "subset") if imp.get(k) and not Path(imp["source"]).suffix)
        greedy = "with greedy solutions" if imp.get("greedy") else "no greedy solutions"
        scores = f"scores: {imp['scores']}" if imp.get("scores") else "no scores"
        missing = ", ".join(GENERATION_SETTINGS[k] for k in self.not_stated())
        return (f"imported with `bestofn import` from {imp.get('source')}{f' ({where})' if where else ''}: "
                f"{imp.get('rows')} problems x {imp.get('n')} completions, {greedy}, {scores}"
                + (f"; not stated: {missing}" if missing else ""))

    def results_entry(self) -> dict[str, Any] | None:
        """What ``results.json`` carries about an import (None for ``bestofn run``): the source and what it lacked."""
        if not self.is_imported:
            return None
        imp = self.imported
        return {"source": imp.get("source"), "split": imp.get("split"), "subset": imp.get("subset"),
                "stated": {k: v for k, v in (imp.get("stated") or {}).items() if v is not None},
                "not_stated": self.not_stated()}
