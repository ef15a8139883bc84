"""The summary ``beam-cross`` prints after a run: counts, where the files are, a table of the crosses.

Columns are sized to their widest cell, so wide numbers never run together.

>>> print(table(["cross", "num_bins"], [["a_X_b", "1,000,000,000"], ["c_X_d", "7"]], right=[False, True]))
  cross       num_bins
  a_X_b  1,000,000,000
  c_X_d              7
"""

from __future__ import annotations

from dataclasses import dataclass, field

from beam_cross.core.stats import expected_collision_share


def table(header: list[str], rows: list[list[str]], right: list[bool]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

    def line(cells):
        return "  " + "  ".join(str(c).rjust(w) if r else str(c).ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    return "\n".join(line(cells) for cells in [header, *rows])


@dataclass
class Summary:
    job: object
    rows_read: int
    rows_crossed: int
    rows_rejected: int
    crossed_files: list[str]
    rejected_files: list[str]
    reasons: dict[str, int]
    report_json: str
    report_png: str | None
    stats: list[dict]
    seconds: float
    notes: list[str] = field(default_factory=list)
    manifest: str | None = None

    def text(self, shown=()) -> str:
        """The summary; a note whose line ``beam-cross: <note>`` is in ``shown`` (already printed when the
        job started) is left out, so that each note is printed once."""
        job, shown = self.job, set(shown)
        lines = [f"beam-cross: done in {self.seconds:.1f} s"]
        lines += [f"  note: {n}" for n in self.notes if f"beam-cross: {n}" not in shown]
        counts = [("rows read", self.rows_read, f"from {len(job.files)} {job.input_format} file(s)"),
                  ("rows crossed", self.rows_crossed, f"-> {_where(self.crossed_files)}"),
                  ("rows rejected", self.rows_rejected, f"-> {_where(self.rejected_files)}")]
        lines.append(table(["", "", ""], [[a, f"{b:,}", c] for a, b, c in counts], [False, True, False]).split("\n", 1)[1])
        if self.reasons:
            lines.append("  rejected by reason: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.reasons.items())))
        lines.append(f"  all {self.rows_read:,} rows accounted for (every planned byte read once; read = crossed + rejected, as counted by the writers)")
        lines.append(f"  manifest  {self.manifest}")
        lines.append(f"  report    {self.report_json}" + (f"\n            {self.report_png}" if self.report_png else ""))
        # Measured next to expected: a lucky sample can collide less than the formula says; the bins for
        # the target are the formula's, whatever this sample measured.
        targets = sorted({s["target_collision_share"] for s in self.stats}) or [0.01]
        header = ["cross", "num_bins", "distinct", "bins used", "collide", "expected",
                  f"bins for {targets[0]:.0%}" if len(targets) == 1 else "bins for target"]
        rows = []
        for s in self.stats:
            approx = "" if s.get("exact", True) else "~"
            expected = expected_collision_share(s["distinct_crosses"], s["num_bins"])
            rows.append([s["cross"], f"{s['num_bins']:,}", f"{approx}{s['distinct_crosses']:,}",
                         f"{approx}{s['bins_used']:,}", f"{approx}{s['collision_share']:.1%}",
                         f"{approx}{expected:.1%}", f"{approx}{s['suggested_num_bins']:,}"])
        lines.append(table(header, rows, [False, True, True, True, True, True, True]))
        estimated = [s for s in self.stats if not s.get("exact", True)]
        for s in estimated:
            lines.append(f"  ~ {s['cross']}: estimated from a DataSketches HLL sketch, distinct crosses within "
                         f"±{s['relative_error_95pct']:.1%} (95%); collide is the occupancy formula's value")
        return "\n".join(lines)


def _where(files) -> str:
    if not files:
        return "(no file)"
    return files[0] if len(files) == 1 else f"{len(files)} files: {files[0].rsplit('-', 3)[0]}-*"
