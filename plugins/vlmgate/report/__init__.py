"""Run records, release diffs, baseline gates, snapshots and the HTML report.

* ``record``       the versioned run record (``run.json``) and its JSON form
* ``collect``      building the record from test reports on the pytest controller
* ``metric_kinds`` proportion vs mean, and which direction of change is worse
* ``paired``       paired tests of a change: exact McNemar, paired bootstrap
* ``pairing``      which case of one run is the same case in another
* ``diff``         every metric of two runs compared; ``diff_format`` renders it
* ``baseline``     ``--vlmgate-baseline``: change limits against a previous release
* ``snapshot``     syrupy extension for per-case summaries (``--vlmgate-snapshot``)
* ``html``         the self-contained HTML report; ``charts`` its optional plots
* ``local_files``  which local files (minimal-failure PNGs) a report may embed

Nothing here is imported by ``vlmgate.plugin`` at module level.
"""
