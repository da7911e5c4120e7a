"""Run records, release diffs, baseline gates, snapshots and the HTML report.

* ``record``       the versioned run record (``run.json``) and its JSON form
* ``collect``      building the record from test reports on the pytest controller
* ``metric_kinds`` proportion vs mean, and which direction of change is worse
* ``paired``       paired tests of a change: exact McNemar, paired bootstrap
* ``pairing``      which case of one run is the same case in another
* ``diff``         every metric of two runs compared: verdicts and paired changes;
                   ``diff_format`` renders it, ``multiplicity`` adjusts its p-values (Holm)
* ``baseline``     ``--vlmgate-baseline``: change limits against a previous release
* ``snapshot``     syrupy extension for per-case summaries (``--vlmgate-snapshot``)
* ``verdicts``     a record at a glance: its verdict, failing gates, each metric's standing
* ``failure``      what a failed gate says (counts, transitions, control, worst samples)
* ``reproduce``    the commands that rerun one case and search its family
* ``html``         the self-contained HTML report; ``charts`` its optional plots
* ``local_files``  which local files (minimal-failure PNGs) a report may embed

Nothing here is imported by ``vlmgate.plugin`` at module level.
"""
