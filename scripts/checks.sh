# scripts/checks.sh: sourced by the test scripts: a private work directory, named checks and the closing count line.
#   source scripts/checks.sh LABEL       LABEL names the work directory and starts the count line
#   check NAME COMMAND...               runs COMMAND; prints "ok   PREFIX-NAME" or "FAIL ..." with its output
#                                       (PREFIX: $check_prefix, LABEL unless set; empty for no prefix)
#   finish                              prints "LABEL: N passed, N failed"; returns 1 when any check failed
# When a check fails and $check_context names a file, its last lines are printed too (an application's own log).
checks_label=$1
work=$(mktemp -d "/tmp/paintsd-$checks_label.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
check_context=""
check_prefix=${check_prefix-$checks_label}
check() {
    local name=$1 log="$work/check-${1//\//_}.log" prefix=${check_prefix:+$check_prefix-}
    shift
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1)); echo "ok   $prefix$name"
    else
        failed=$((failed + 1)); echo "FAIL $prefix$name"; sed 's/^/     /' "$log"
        if [ -n "$check_context" ] && [ -f "$check_context" ]; then tail -20 "$check_context" | sed 's/^/     /'; fi
    fi
}
finish() {
    echo "${checks_label:-checks}: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
