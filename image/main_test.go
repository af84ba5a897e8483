package image

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// When fuzzing finds an input with new coverage, it first minimizes
	// it, by default for up to a minute: that minute is spent running
	// the target on shorter versions of one input instead of exploring.
	// Unless asked otherwise, keep it short so a brief -fuzztime fuzzes.
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		if err := flag.Set("test.fuzzminimizetime", "1s"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}
