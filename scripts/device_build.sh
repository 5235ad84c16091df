#!/usr/bin/env bash
# Turn a short loan of a GPU machine into committed table-build shards.
#
#   bash scripts/device_build.sh prepare            # here: wheels the device lacks; slim the tree
#   bash scripts/device_build.sh run [BUILD ARGS]   # there: build until the deadline, pack it
#   bash scripts/device_build.sh unpack FILE        # here: unpack what came back, restore; commit
#   bash scripts/device_build.sh slim | restore     # here: prepare's slimming alone, or its undoing
#
# "run" trains on CUDA with many workers at once (one CUDA process per worker, one CPU thread
# each) and starts no training after DEADLINE seconds (default 420), so that a 10-minute command
# ends with every finished training recorded; the build is its own build (<name>-cuda, every
# result records its device; scripts/build_table.py refuses to mix it with CPU rows). It resumes
# the GPU build in the working tree and writes the build's new and changed files as one archive,
# $OUT/build.tar.gz. Its default build is the encoder decision's space on the default task
# (--dataset Books-20core --space core-v1 --seeds 0 1 2); BUILD ARGS replace it.
# Environment: WORKERS (default 14, for the H200 machine's 16 cores), DEADLINE (default 420),
# DEVICE (default cuda; cpu for a smoke test of the script itself, with --out outside
# benchmarks/table-build), TESTS (default 1: first the tests that need a GPU, reported, not
# fatal; 0 skips them, as a loan's second call may).
#
# The tree that travels to the device is at most 64 MiB, and the committed builds and raw results
# are more than that. "prepare" therefore untracks benchmarks/results and every CPU build (the
# GPU builds, *-cuda, stay) and ignores them in .git/info/exclude; "unpack" and "restore" put the
# index back. Never commit between "prepare" and "unpack": the commit would delete those files.
#
# With the device tool, a 15-minute loan is two calls (measured on the first loan: 460 s held
# for a 430 s command, then 306 s for the second):
#   prepare; run(command="DEADLINE=380 bash scripts/device_build.sh run", carry=[".whl"],
#   timeout_s=600); unpack <files_at>/build.tar.gz; prepare; a second run with DEADLINE=290
#   within the machine's 30 idle seconds; unpack. The second call must carry the first call's
#   shards (unpack, then prepare): a machine does not keep them, and without them the second
#   call retrains the same shards.
set -euo pipefail
cd "$(dirname "$0")/.."

MARK="# scripts/device_build.sh prepare: untracked while a device call runs"

restore() {
    grep -qxF "$MARK" .git/info/exclude 2>/dev/null || return 0
    mapfile -t paths < <(awk -v m="$MARK" '$0 == m {on = !on; next} on {print}' \
        .git/info/exclude | sed 's|^/||; s|/$||')
    git reset -q -- "${paths[@]}"
    awk -v m="$MARK" '$0 == m {on = !on; next} !on' .git/info/exclude >.git/info/exclude.new
    mv .git/info/exclude.new .git/info/exclude
    echo "index restored: ${#paths[@]} paths tracked again"
}

slim() {
    restore
    paths=(benchmarks/results)
    for build in benchmarks/table-build/*/; do
        case "$build" in *-cuda/) ;; *) paths+=("${build%/}") ;; esac
    done
    git rm -r -q --cached --ignore-unmatch -- "${paths[@]}"
    { echo "$MARK"; printf '/%s/\n' "${paths[@]}"; echo "$MARK"; } >>.git/info/exclude
    local bytes
    bytes=$(git ls-files -z | xargs -0 du -cb | tail -n 1 | cut -f1)
    echo "untracked ${#paths[@]} paths until unpack or restore; $((bytes / 1048576)) MiB tracked"
    echo "do not commit before: bash $0 unpack FILE (or: bash $0 restore)"
}

case "${1:-}" in
prepare)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    # the device's image has torch, torch-geometric, numpy and cloudpickle, not gymnasium
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp -d .whl "gymnasium==$(python3 -c 'import gymnasium; print(gymnasium.__version__)')" \
        farama-notifications
    ls .whl
    slim
    ;;
slim)
    slim
    ;;
restore)
    restore
    ;;
run)
    shift
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    if [ "${TESTS:-1}" = 1 ] && [ "${DEVICE:-cuda}" = cuda ]; then
        # the tests that only a GPU runs (about 15 s); their outcome is reported, not fatal
        timeout 120 python3 -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests/test_metrics.py \
            tests/test_models_train.py tests/test_process_state.py 2>&1 | tail -n 3 || true
    fi
    args=("$@")
    [ ${#args[@]} -gt 0 ] || args=(--dataset Books-20core --space core-v1 --seeds 0 1 2)
    touch /tmp/device_build.start
    status=0
    python3 scripts/build_table.py "${args[@]}" --device "${DEVICE:-cuda}" \
        --workers "${WORKERS:-14}" --threads 1 --deadline "${DEADLINE:-420}" || status=$?
    python3 scripts/build_table.py "${args[@]}" --device "${DEVICE:-cuda}" --status
    find benchmarks/table-build -newer /tmp/device_build.start -type f -print0 |
        tar --null -czf "$OUT/build.tar.gz" --files-from=-
    tar -tzf "$OUT/build.tar.gz" | wc -l
    exit $status
    ;;
unpack)
    [ -f "${2:-}" ] || { echo "usage: $0 unpack FILE (the build.tar.gz that came back)" >&2; exit 2; }
    tar -xzf "$2"
    # a shard sealed there leaves no journal: drop the one committed here
    tar -tzf "$2" | grep -E 'shard-[0-9]+\.jsonl$' | sed 's|\.jsonl$|.partial.jsonl|' |
        while read -r journal; do rm -f "$journal"; done
    tar -tzf "$2" | sed 's|/[^/]*$||' | sort -u
    restore
    ;;
*)
    sed -n '2,32p' "$0" >&2
    exit 2
    ;;
esac
