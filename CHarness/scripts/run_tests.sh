#!/bin/sh
# run_tests.sh BIN_DIR JUNIT_DIR UNIT... - runs each cmocka binary with JUnit XML output, one file per group
# (cmocka 1.1.5 neither overwrites an existing file nor escapes names: stale files are deleted first).
# Prints each failure from the XML; exits 1 if any test failed, crashed or wrote no (well-formed) report.
set -u
bin_dir=$1
junit_dir=$2
shift 2
mkdir -p "$junit_dir"
rm -f "$junit_dir"/*.xml
status=0
for unit in "$@"; do
    start=$(date +%s.%N)
    CMOCKA_MESSAGE_OUTPUT=xml CMOCKA_XML_FILE="$junit_dir/%g.xml" "$bin_dir/test_$unit" >"$junit_dir/$unit.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    xml="$junit_dir/$unit.xml"
    secs=$(awk "BEGIN { printf \"%.2f\", $end - $start }")
    if [ ! -s "$xml" ]; then
        echo "FAIL $unit: no JUnit report $xml (exit $rc); output:"
        cat "$junit_dir/$unit.log"
        status=1
        continue
    fi
    if command -v xmllint >/dev/null 2>&1 && ! xmllint --noout "$xml"; then
        echo "FAIL $unit: $xml is not well-formed"
        status=1
    fi
    tests=$(grep -o '<testcase ' "$xml" | wc -l)
    failed=$(grep -c '<failure' "$xml")
    if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
        echo "FAIL $unit: $failed of $tests failed (exit $rc) in ${secs}s"
        sed -n '/<failure/,/<\/failure>/p' "$xml"
        [ -s "$junit_dir/$unit.log" ] && cat "$junit_dir/$unit.log"
        status=1
    else
        echo "ok   $unit: $tests tests in ${secs}s"
    fi
done
exit $status
