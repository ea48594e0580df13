#!/usr/bin/env bash
# check-repository.sh [DIR] — checks the tracked files of a checkout (default: this one):
#   1. no absolute path of a machine (under the top-level folders work, root, home, Users, Volumes or mnt, or
#      a Windows user folder): scripts find their checkout, docs use paths relative to it;
#   2. every docs/*.md that a tracked file names exists, and every relative Markdown link [..](path) of a
#      tracked .md file points at a file or folder that exists.
# Prints each problem as FILE:LINE: what; the last line is "check-repository: N passed, N failed" (one per check).
set -uo pipefail
dir="$(cd -- "${1:-$(dirname -- "${BASH_SOURCE[0]}")/..}" && pwd -P)"
cd "$dir" || exit 2
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mapfile -d '' files < <(git ls-files -z)
else
    mapfile -d '' files < <(find . -path ./.git -prune -o -path ./.build -prune -o -path ./.venv-qt -prune -o -type f -print0 | sed -z 's|^\./||')
fi
# This script names the patterns it looks for; the patterns are built so that it does not match itself.
slash=/
machine="${slash}(work|root|home|Users|Volumes|mnt)${slash}|[A-Za-z]:\\\\Users"
passed=0
failed=0

found=$(for f in "${files[@]}"; do [ -f "$f" ] && grep -I -n -H -E -- "$machine" "$f"; done)
if [ -n "$found" ]; then
    echo "check-repository: FAIL: absolute paths of a machine (use paths relative to the checkout):"
    printf '%s\n' "$found" | sed 's/^/  /'
    failed=$((failed + 1))
else
    echo "ok   check-repository: no machine path in ${#files[@]} tracked files"
    passed=$((passed + 1))
fi

problems=""
for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    # a document of the docs folder named anywhere (code, scripts, docs): resolved from the top of the checkout
    while IFS=: read -r line ref; do
        [ -n "$ref" ] || continue
        [ -f "$ref" ] || problems+="$f:$line: names $ref, which does not exist"$'\n'
    done < <(grep -I -n -o -E '(^|[^A-Za-z0-9_./-])docs/[A-Za-z0-9_.-]+\.md' "$f" | sed -E 's/^([0-9]+):.?(docs\/)/\1:\2/')
    # relative Markdown links in .md files: resolved from the file's folder
    case "$f" in *.md) ;; *) continue ;; esac
    base=$(dirname -- "$f")
    while IFS=: read -r line target; do
        target=${target%%#*}
        [ -n "$target" ] || continue
        case "$target" in http://* | https://* | mailto:* | /*) continue ;; esac
        [ -e "$base/$target" ] || problems+="$f:$line: links to $target, which does not exist"$'\n'
    done < <(grep -n -o -E '\]\([^) ]+\)' "$f" | sed -E 's/^([0-9]+):\]\((.*)\)$/\1:\2/')
done
if [ -n "$problems" ]; then
    echo "check-repository: FAIL: documents named or linked that are not in the repository:"
    printf '%s' "$problems" | sed 's/^/  /'
    failed=$((failed + 1))
else
    echo "ok   check-repository: every named docs/*.md and relative link exists"
    passed=$((passed + 1))
fi
echo "check-repository: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
