"""What pytest's options take: a value, an optional value, two values, or nothing.

Telling an option's value from a positional argument is what lets gym/pytest_command.py swap a
command's paths for the failing tests' node ids; an option missing here makes it re-run the
whole command rather than guess. Listed: pytest's own options and common plugins'.
"""

from __future__ import annotations

# pytest's options (its own and common plugins') that take a value: the next argument, or
# attached (`-kexpr`, `--tb=short`). Anything not listed is a flag.
SHORT_VALUE = frozenset("kmpcoWrn")  # -n: pytest-xdist
SHORT_FLAGS = frozenset("xsvqlhVfd")  # -f, -d: pytest-xdist
LONG_VALUE = frozenset({
    # pytest
    "--maxfail", "--pythonwarnings", "--max-warnings", "--ignore", "--ignore-glob", "--deselect",
    "--confcutdir", "--import-mode", "--config-file", "--rootdir", "--basetemp", "--durations",
    "--durations-min", "--override-ini", "--verbosity", "--report-chars", "--tb", "--show-capture",
    "--color", "--code-highlight", "--pdbcls", "--capture", "--pastebin", "--assert",
    "--junitxml", "--junit-xml", "--junitprefix", "--junit-prefix", "--doctest-report",
    "--doctest-glob", "--lfnf", "--last-failed-no-failures", "--log-level", "--log-format",
    "--log-date-format", "--log-cli-level", "--log-cli-format", "--log-cli-date-format",
    "--log-file", "--log-file-mode", "--log-file-level", "--log-file-format",
    "--log-file-date-format", "--log-auto-indent", "--log-disable", "--result-log",
    # pytest-asyncio, pytest-timeout, anyio, hypothesis
    "--asyncio-mode", "--timeout", "--timeout_method", "--timeout-method", "--session-timeout",
    "--anyio-mode", "--hypothesis-profile", "--hypothesis-verbosity", "--hypothesis-seed",
    # pytest-xdist
    "--numprocesses", "--maxprocesses", "--max-worker-restart", "--maxschedchunk", "--dist",
    "--tx", "--px", "--rsyncdir", "--rsyncignore",
    # pytest-cov, pytest-rerunfailures, pytest-randomly, pytest-django, pytest-html
    "--cov-config", "--cov-fail-under", "--cov-context", "--reruns", "--reruns-delay",
    "--only-rerun", "--rerun-except", "--randomly-seed", "--ds", "--dc", "--liveserver",
    "--html", "--css",
    # pytest-json-report, pytest-split, pytest-socket, pytest-benchmark
    "--json-report-file", "--json-report-indent", "--json-report-omit", "--splits", "--group",
    "--splitting-algorithm", "--durations-path", "--store-durations-path", "--allow-hosts",
    "--benchmark-min-time", "--benchmark-max-time", "--benchmark-min-rounds",
    "--benchmark-timer", "--benchmark-calibration-precision", "--benchmark-warmup-iterations",
    "--benchmark-sort", "--benchmark-group-by", "--benchmark-columns", "--benchmark-name",
    "--benchmark-save", "--benchmark-json", "--benchmark-compare-fail", "--benchmark-cprofile",
    "--benchmark-storage", "--benchmark-time-unit",
})  # fmt: skip
# Options whose value is optional (argparse's nargs="?"): the next argument is their value
# unless it starts with "-", so `pytest --cov tests/` measures tests/ and runs the default paths.
LONG_OPTIONAL = frozenset({
    "--debug", "--cache-show", "--cov", "--cov-report", "--benchmark-compare",
    "--benchmark-histogram", "--benchmark-warmup",
})  # fmt: skip
LONG_TWO_VALUES = frozenset({"--metadata"})  # pytest-metadata: --metadata KEY VALUE
# Known flags: an unknown option followed by a word that is not a path is ambiguous (its value,
# or a positional argument?), and the command then re-runs as it is.
LONG_FLAGS = frozenset({
    "--cache-clear", "--co", "--collect-in-virtualenv", "--collect-only", "--collectonly",
    "--continue-on-collection-errors", "--disable-plugin-autoload", "--disable-pytest-warnings",
    "--disable-warnings", "--doctest-continue-on-failure", "--doctest-ignore-import-errors",
    "--doctest-modules", "--exitfirst", "--failed-first", "--ff", "--fixtures",
    "--fixtures-per-test", "--force-short-summary", "--full-trace", "--fulltrace", "--funcargs",
    "--help", "--keep-duplicates", "--keepduplicates", "--last-failed", "--lf", "--markers",
    "--new-first", "--nf", "--no-fold-skipped", "--no-header", "--no-showlocals", "--no-summary",
    "--noconftest", "--pdb", "--pyargs", "--quiet", "--runxfail", "--setup-only", "--setup-plan",
    "--setup-show", "--setuponly", "--setupplan", "--setupshow", "--showlocals", "--stepwise",
    "--stepwise-reset", "--stepwise-skip", "--strict", "--strict-config", "--strict-markers",
    "--sw", "--sw-reset", "--sw-skip", "--trace", "--trace-config", "--traceconfig", "--verbose",
    "--version", "--xfail-tb", "--asyncio-debug", "--hypothesis-show-statistics",
    "--hypothesis-explain", "--looponfail", "--distload", "--boxed", "--forked", "--cov-append",
    "--cov-branch", "--cov-reset", "--no-cov", "--no-cov-on-fail", "--randomly-dont-reorganize",
    "--randomly-dont-reset-seed", "--reuse-db", "--create-db", "--nomigrations", "--migrations",
    "--no-migrations", "--self-contained-html", "--json-report", "--benchmark-skip",
    "--benchmark-only", "--benchmark-disable", "--benchmark-enable", "--benchmark-autosave",
    "--benchmark-save-data", "--benchmark-verbose", "--benchmark-quiet",
    "--benchmark-disable-gc", "--disable-socket", "--allow-unix-socket", "--force-enable-socket",
    "--mypy", "--ruff", "--ruff-format", "--flake8", "--black", "--isort", "--snapshot-update",
    "--testmon", "--store-durations", "--clean-durations",
})  # fmt: skip
