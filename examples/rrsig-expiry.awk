# rrsig-expiry.awk: the earliest RRSIG expiration of a signed zone file.
#
#   awk -v zone=Z -v mode=list -f rrsig-expiry.awk signed/Z
#       prints "Z YYYY-MM-DD HH:MM:SS UTC" (the earliest expiration)
#   awk -v zone=Z -v mode=due -v horizon=EPOCH -f rrsig-expiry.awk signed/Z
#       prints "Z" when a signature expires before EPOCH, or when the file
#       holds no RRSIG at all (it cannot be a zone that validates)
#
# The zone file is read as ldns-signzone writes it: one record per line,
# "owner [ttl] [class] type data", ";" comments. The expiration is the
# fifth field after the type RRSIG (RFC 4034 section 3.2: type covered,
# algorithm, labels, original TTL, expiration), written either as
# YYYYMMDDHHmmSS (UTC) or as seconds since the epoch. Dates are turned into
# seconds by hand (POSIX awk has no date functions), so this runs the same
# with mawk, gawk, busybox awk and FreeBSD's awk.

# Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian).
function days_from_civil(y, m, d,    era, yoe, doy, doe) {
    if (m <= 2) y -= 1
    era = int((y >= 0 ? y : y - 399) / 400)
    yoe = y - era * 400
    doy = int((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
    doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy
    return era * 146097 + doe - 719468
}

function to_epoch(t) {
    if (t ~ /^[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]$/)
        return days_from_civil(substr(t, 1, 4) + 0, substr(t, 5, 2) + 0, substr(t, 7, 2) + 0) * 86400 \
            + substr(t, 9, 2) * 3600 + substr(t, 11, 2) * 60 + substr(t, 13, 2)
    if (t ~ /^[0-9]+$/)
        return t + 0
    return -1
}

function show(t,    e) {
    if (t ~ /^[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]$/)
        return substr(t, 1, 4) "-" substr(t, 5, 2) "-" substr(t, 7, 2) " " \
            substr(t, 9, 2) ":" substr(t, 11, 2) ":" substr(t, 13, 2) " UTC"
    return t " (seconds since 1970)"
}

BEGIN {
    if (zone == "" || (mode != "list" && mode != "due") || (mode == "due" && horizon !~ /^[0-9]+$/)) {
        print "rrsig-expiry.awk: give -v zone=NAME and -v mode=list, or mode=due with -v horizon=SECONDS" > "/dev/stderr"
        bad = 2
        exit 2
    }
    found = 0
}

{
    sub(/;.*/, "")
    if (NF < 2) next
    # Past the owner: an optional TTL and class, in either order, then the type.
    i = 2
    for (k = 0; k < 2 && i < NF; k++)
        if ($i ~ /^[0-9]+$/ || toupper($i) ~ /^(IN|CH|HS|CS|CLASS[0-9]+)$/) i++
    if (toupper($i) != "RRSIG") next
    t = $(i + 5)
    e = to_epoch(t)
    if (e < 0) {
        printf "rrsig-expiry.awk: %s line %d: the RRSIG expiration is neither YYYYMMDDHHmmSS nor a number\n", FILENAME, FNR > "/dev/stderr"
        bad = 1
        exit 1
    }
    if (!found || e < earliest) {
        earliest = e
        earliest_text = t
    }
    found = 1
}

END {
    if (bad) exit bad
    if (mode == "list") {
        if (found) print zone, show(earliest_text)
        else print zone, "no RRSIG"
    } else if (!found || earliest < horizon + 0) {
        print zone
    }
}
