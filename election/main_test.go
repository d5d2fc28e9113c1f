package election_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testutil.LeakOptions(
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)...)
}
