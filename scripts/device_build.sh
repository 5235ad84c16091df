#!/usr/bin/env bash
# Turn a short loan of a GPU machine into committed table-build shards.
#
#   bash scripts/device_build.sh prepare            # here: fetch the wheels the device lacks
#   bash scripts/device_build.sh run [BUILD ARGS]   # there: build until the deadline, pack it
#   bash scripts/device_build.sh unpack FILE        # here: unpack what came back, then commit
#
# "run" trains on CUDA with many workers at once (one CUDA process per worker, one CPU thread
# each) and starts no training after DEADLINE seconds (default 420), so that a 10-minute command
# ends with every finished training recorded; the build is its own build (<name>-cuda, every
# result records its device; scripts/build_table.py refuses to mix it with CPU rows). It resumes
# the GPU build already committed in the working tree and writes the build's new and changed
# files as one archive, $OUT/build.tar.gz. Its default build is the encoder decision's space on
# the default task (--dataset Books-20core --space core-v1 --seeds 0 1 2); BUILD ARGS replace it.
# Environment: WORKERS (default 12), DEADLINE (default 420), DEVICE (default cuda; cpu for a
# smoke test of the script itself, with --out outside benchmarks/table-build).
#
# With the device tool: run(command="bash scripts/device_build.sh run", carry=[".whl"],
# timeout_s=600); then `bash scripts/device_build.sh unpack <files_at>/build.tar.gz` here.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    # the device's image has torch, torch-geometric, numpy and cloudpickle, not gymnasium
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp -d .whl "gymnasium==$(python3 -c 'import gymnasium; print(gymnasium.__version__)')" \
        farama-notifications
    ls .whl
    ;;
run)
    shift
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    args=("$@")
    [ ${#args[@]} -gt 0 ] || args=(--dataset Books-20core --space core-v1 --seeds 0 1 2)
    touch /tmp/device_build.start
    status=0
    python3 scripts/build_table.py "${args[@]}" --device "${DEVICE:-cuda}" \
        --workers "${WORKERS:-12}" --threads 1 --deadline "${DEADLINE:-420}" || status=$?
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
    ;;
*)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
