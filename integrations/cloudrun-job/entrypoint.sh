#!/bin/sh
# Cloud Run Jobs task: run this task's targets of the fleet manifest, then (whichever task records
# last) the fleet roll-up. Task k of n runs targets k, k+n, k+2n... (CLOUD_RUN_TASK_INDEX /
# CLOUD_RUN_TASK_COUNT); every task of one execution shares the fleet id CLOUD_RUN_EXECUTION, so
# the roll-up lands in $RUNBOOK_REPORTS/fleet-<execution>/ on the Cloud Storage volume.
#
#   RUNBOOK_MANIFEST   the manifest (in the image, or on the volume)     required
#   RUNBOOK_REPORTS    the reports folder (the volume's mount path)      default /reports
#   RUNBOOK_PHASE      1, 2, 3 or all                                     default all
#   RUNBOOK_VANTAGE    where the probes run from, stated in the roll-up  e.g. "Cloud Run job, VPC connector X"
#   RUNBOOK_BIN        the runbook command                               default runbook
# Arguments (the job's `args`) are passed on, e.g. -p KEY=VALUE for every target.
#
# Exit: 0 when the runbook ran (healthy or not: the roll-up carries the verdict, and an unhealthy
# environment is no reason to retry); 2 when the runbook itself failed (Cloud Run retries the task).
set -eu
: "${RUNBOOK_MANIFEST:?set RUNBOOK_MANIFEST to the fleet manifest}"
exec "${RUNBOOK_BIN:-runbook}" fleet target \
  --manifest "$RUNBOOK_MANIFEST" \
  --out "${RUNBOOK_REPORTS:-/reports}" \
  --phase "${RUNBOOK_PHASE:-all}" \
  --cloud-run-task --rollup-when-complete --unhealthy-ok \
  "$@"
