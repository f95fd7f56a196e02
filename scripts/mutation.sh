#!/usr/bin/env bash
# Mutation testing of one module (or package directory) with mutmut 3, against the fast tests that exercise it.
#
#   scripts/mutation.sh MODULE_PATH [TESTS...]
#
#   scripts/mutation.sh decide/serving/batching.py
#   scripts/mutation.sh decide/policies tests/unit/test_policies.py tests/unit/test_compiled.py
#
# MODULE_PATH is a file or a directory under decide/. TESTS are pytest paths (or
# node ids, or options such as --deselect=NODE_ID, written as one argument);
# without them the script uses the tests listed for MODULE_PATH below, and refuses
# a module it has no list for, because running the whole suite per mutant would
# take hours.
#
# Nothing in the repository is changed: the script copies the working tree
# (tracked and untracked, not ignored, files, plus the compiled extensions) into
# a scratch directory, writes mutmut's configuration there as setup.cfg, and runs
# mutmut in it, at nice 10 with at most $MUTATION_CHILDREN (default 2) workers.
# It ends with the score, killed / total, and every mutant that was not killed
# with its diff. Mutants listed in scripts/mutation-equivalents.txt (each with the
# reason it is equivalent) are also reported as a score that leaves them out.
#
# Environment: MUTATION_CHILDREN (2), MUTATION_KEEP=1 keeps the scratch directory
# (to run `mutmut show NAME` or `mutmut browse` there), PYTHON (.venv/bin/python).
# Exit status: 0 when the score (equivalents excluded) is at least
# MUTATION_TARGET percent (default 85), 1 when below, 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
module=${1%/}
shift
if [ ! -e "$module" ] || [[ "$module" != decide/* ]]; then
    echo "mutation.sh: $module is not a module or directory under decide/" >&2
    exit 2
fi

tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    case "$module" in
        decide/serving/batching.py)
            tests=(tests/serving/test_batching.py tests/unit/test_batching_edges.py) ;;
        decide/evaluation/estimators.py)
            # The 200-log coverage check takes 15 s a run, and every surviving mutant would run it: it is a
            # statistical test, not a unit test, so it is left out (the edge tests pin what it would catch).
            tests=(tests/evaluation/test_estimators.py tests/evaluation/test_estimators_edges.py
                   --deselect=tests/evaluation/test_estimators.py::test_every_estimators_95_percent_interval_covers_the_truth_in_about_95_percent_of_logs) ;;
        decide/evaluation/reward_model.py)
            # The estimators' tests: the reward model is what their direct method and DR estimates fit.
            tests=(tests/evaluation/test_estimators.py tests/evaluation/test_estimators_edges.py tests/evaluation/test_reward_model_edges.py
                   --deselect=tests/evaluation/test_estimators.py::test_every_estimators_95_percent_interval_covers_the_truth_in_about_95_percent_of_logs) ;;
        decide/pipeline/joins.py)
            tests=(tests/unit/test_joins.py tests/unit/test_joiner_index.py tests/unit/test_joins_edges.py
                   tests/integration/test_joining.py) ;;
        decide/learning.py)
            tests=(tests/unit/test_policies.py tests/unit/test_learning_edges.py) ;;
        decide/pipeline/learner.py)
            # The integration tests run on SQLite (DECIDE_TEST_POSTGRES_URL unset), a second or two each.
            tests=(tests/unit/test_learner_edges.py tests/integration/test_loop_settings.py tests/integration/test_joining.py) ;;
        decide/policies)
            tests=(tests/unit/test_policies.py tests/unit/test_compiled.py tests/unit/test_policies_edges.py) ;;
        decide/features.py)
            tests=(tests/unit/test_features.py tests/unit/test_chosen_vectors.py tests/unit/test_compiled.py
                   tests/unit/test_features_edges.py) ;;
        *)
            echo "mutation.sh: no default tests for $module; name the fast tests that exercise it" >&2
            exit 2 ;;
    esac
fi
for test in "${tests[@]}"; do
    if [[ "$test" != -* ]] && [ ! -e "${test%%::*}" ]; then
        echo "mutation.sh: test path ${test%%::*} does not exist" >&2
        exit 2
    fi
done

python=${PYTHON:-$root/.venv/bin/python}
if [ ! -x "$python" ]; then
    echo "== creating .venv and installing decide with its test dependencies"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
    python=$root/.venv/bin/python
fi
if ! "$python" -c 'import mutmut, sys; sys.exit(tuple(map(int, mutmut.__version__.split(".")[:2])) < (3, 8))' 2>/dev/null; then
    echo "== installing mutmut 3"
    "$python" -m pip install -q --disable-pip-version-check 'mutmut>=3.8,<4'
fi
mutmut=$(dirname "$python")/mutmut

# One BLAS thread per process: two cores are shared, more threads only oversubscribe them.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
children=${MUTATION_CHILDREN:-2}
target=${MUTATION_TARGET:-85}

work=$(mktemp -d "${TMPDIR:-/tmp}/decide-mutation.XXXXXX")
if [ "${MUTATION_KEEP:-0}" = 1 ]; then
    trap 'echo "== scratch directory kept: $work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi

echo "== copying the working tree to $work"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
    [ -e "$file" ] && printf '%s\0' "$file"
done | tar --null -T - -cf - | tar -C "$work" -xf -
find decide -name '*.so' -print0 | tar --null -T - -cf - | tar -C "$work" -xf -

if [ -d "$module" ]; then
    pattern="$module/*"
else
    pattern="$module"
fi
if grep -q '^\[tool\.mutmut\]' "$work/pyproject.toml"; then
    echo "mutation.sh: pyproject.toml has a [tool.mutmut] section, which would override this script's setup.cfg" >&2
    exit 2
fi
{
    echo "[mutmut]"
    echo "source_paths = decide"
    echo "only_mutate = $pattern"
    printf 'also_copy =\n    simulations\n    docs\n    scripts\n    README.md\n'
    echo "pytest_add_cli_args_test_selection ="
    for test in "${tests[@]}"; do echo "    $test"; done
    printf 'pytest_add_cli_args =\n    -p\n    no:cacheprovider\n'
} >"$work/setup.cfg"

echo "== mutating $module; tests: ${tests[*]}"
echo "== $children workers at nice 10"
start=$(date +%s)
cd "$work"
status=0
nice -n 10 "$mutmut" run --max-children "$children" || status=$?
elapsed=$(($(date +%s) - start))
if [ "$status" -ne 0 ]; then
    echo "mutation.sh: mutmut run failed (exit $status)" >&2
    exit "$status"
fi

"$mutmut" results --all true >"$work/results.txt"
echo
echo "== mutants not killed, with their diffs"
"$python" - "$work/results.txt" "$root/scripts/mutation-equivalents.txt" "$module" "$elapsed" "$target" "$mutmut" <<'PY'
import re
import subprocess
import sys

results, equivalents_file, module, elapsed, target, mutmut = sys.argv[1:]
statuses = {}
for line in open(results, encoding="utf-8"):
    name, _, status = line.strip().rpartition(": ")
    if name:
        statuses[name] = status
equivalents = {}
try:
    for line in open(equivalents_file, encoding="utf-8"):
        name, _, reason = line.partition("#")
        if name.strip():
            equivalents[name.strip()] = reason.strip()
except FileNotFoundError:
    pass

def show(name):
    try:  # mutmut's own diff, in this process: `mutmut show` costs a second a mutant
        from mutmut.mutation.diff_apply import get_diff_for_mutant

        return "#\n" + get_diff_for_mutant(name)
    except Exception:
        return subprocess.run([mutmut, "show", name], capture_output=True, text=True).stdout


killed = [n for n, s in statuses.items() if s in ("killed", "timeout", "caught by type check", "segfault")]
alive = sorted(n for n in statuses if n not in set(killed))
for name in alive:
    tag = "  [equivalent: " + equivalents[name] + "]" if name in equivalents else ""
    print(f"-- {name}: {statuses[name]}{tag}")
    diff = show(name)
    print("\n".join(l for l in diff.splitlines()[1:] if l.startswith(("+", "-", "@@")) and not l.startswith(("+++", "---"))))
total = len(statuses)
explained = [n for n in alive if n in equivalents]
stale = [n for n in equivalents if n in statuses and n not in alive]
print()
print(f"== {module}: {len(killed)} / {total} mutants killed ({100 * len(killed) / max(total, 1):.1f}%) in {elapsed} s")
by_status = {}
for status in statuses.values():
    by_status[status] = by_status.get(status, 0) + 1
print("   " + ", ".join(f"{count} {status}" for status, count in sorted(by_status.items())))
score = 100 * len(killed) / max(total - len(explained), 1)
if explained:
    print(f"   {len(explained)} explained equivalent (scripts/mutation-equivalents.txt): "
          f"{len(killed)} / {total - len(explained)} killed ({score:.1f}%)")
for name in stale:
    print(f"   note: {name} is listed as equivalent but was killed; remove it from the list")
sys.exit(0 if score >= float(target) else 1)
PY
