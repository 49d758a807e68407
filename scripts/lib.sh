# Shared by scripts/run and scripts/test: dependencies and the build.
# Usage: source scripts/lib.sh; needlefs_setup [build-dir] [extra cmake args...]

NEEDLEFS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

needlefs_setup() {
  local build_dir="${1:-$NEEDLEFS_ROOT/build}"
  shift || true
  "$NEEDLEFS_ROOT/scripts/install-deps"
  if [ ! -f "$build_dir/build.ninja" ]; then
    cmake -S "$NEEDLEFS_ROOT" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
  fi
  # Two cores: one build at a time, two jobs.
  cmake --build "$build_dir" -j 2
}

# pid_alive PID: the process runs (a killed one not yet reaped, a zombie,
# does not count: orphans wait for their reaper).
pid_alive() {
  kill -0 "$1" 2>/dev/null && ! grep -qs '^State:.*Z' "/proc/$1/status"
}

# wait_exit PID: waits up to 10 s for the process to end; false if it runs on.
wait_exit() {
  for _ in $(seq 100); do pid_alive "$1" || return 0; sleep 0.1; done
  return 1
}
