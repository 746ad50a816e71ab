package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Bounds of a rate a flag may set, in requests per second: slower than one a day is a limit
// nobody means (0 turns it off), faster than a million a second is none.
const (
	minRate = 1.0 / (24 * 60 * 60)
	maxRate = 1e6
)

// rateValue is a flag.Value setting a refill rate in requests per second from
// "N/DURATION": 20/s, 1/3s (one every 3 seconds), 100/1m, 0.5/s; 0 means no limit.
type rateValue struct{ perSecond *float64 }

func (v rateValue) String() string {
	if v.perSecond == nil {
		return ""
	}
	return formatRate(*v.perSecond)
}

func (v rateValue) Set(s string) error {
	r, err := parseRate(s)
	if err != nil {
		return err
	}
	*v.perSecond = r
	return nil
}

var errRateSyntax = errors.New("want N/DURATION (20/s, 1/3s, 100/1m) or 0")

// parseRate reads "N/DURATION" as N per DURATION, in requests per second; "0" (or any N of
// 0) is 0, no limit. DURATION is a Go duration, whose 1 may be left out ("s" for "1s").
func parseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	ns, per, ok := strings.Cut(s, "/")
	if !ok {
		return 0, errRateSyntax
	}
	n, err := strconv.ParseFloat(ns, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) || n < 0 || strings.ContainsAny(ns, "xXpP_") {
		return 0, fmt.Errorf("%q is not a count: %w", ns, errRateSyntax)
	}
	if per != "" && (per[0] < '0' || per[0] > '9') && per[0] != '.' {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration: %w", per, errRateSyntax)
	}
	if n == 0 {
		return 0, nil
	}
	r := n / d.Seconds()
	if r < minRate || r > maxRate {
		return 0, fmt.Errorf("%s is %g a second: a rate is between one a day and %g a second, or 0", s, r, float64(maxRate))
	}
	return r, nil
}

// formatRate writes a rate as parseRate reads it: "20/s" from 1 a second up, "1/3s" below.
func formatRate(perSecond float64) string {
	switch {
	case perSecond <= 0:
		return "0"
	case perSecond >= 1:
		return strconv.FormatFloat(perSecond, 'g', -1, 64) + "/s"
	}
	return "1/" + time.Duration(math.Round(float64(time.Second)/perSecond)).String()
}
