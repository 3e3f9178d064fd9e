"""Hand-back: the report's summary as one comment on the tracking GitHub issue, plus label moves.

``github.py`` is the GitHub REST client (deadlines, retries that are safe to resend, errors
translated into one line); ``attach.py`` decides what to post from the run's files (summary,
status, since the last run, quiet mode from ``history.quiet``). Reads report folders; decides no
status (the results model did).
"""
