package web

import "time"

// SetDutyRatio sets the scanner's rest ratio and returns the old one.
func SetDutyRatio(r time.Duration) time.Duration { old := dutyRatio; dutyRatio = r; return old }
