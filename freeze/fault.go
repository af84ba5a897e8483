package freeze

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Fault injection, for the tests only: they prove that a freeze failing
// at any step leaves its target exactly as it was.
//
//	CRYO_TEST_FAULT=step          the step fails with an injected error
//	CRYO_TEST_PAUSE=step:FILE     at the step, create FILE and wait until
//	                              the test removes it (or freeze is
//	                              interrupted), so that the test can
//	                              disturb the target or freeze itself
//
// Steps, in order: seized, injecting (scratch page mapped, signals
// blocked), thread (the last thread read, its own injection session
// still open; the main thread's when it is the only one), collected, dumping (first pages written), written (before
// fsync and rename), fsync (fails the fsync).
const (
	envFault = "CRYO_TEST_FAULT"
	envPause = "CRYO_TEST_PAUSE"
)

// errInjected is the error of an injected fault.
var errInjected = errors.New("injected fault")

func fault(ctx context.Context, step string) error {
	if os.Getenv(envFault) == step {
		return fmt.Errorf("%w at step %s", errInjected, step)
	}
	if p := os.Getenv(envPause); p != "" {
		if s, file, ok := strings.Cut(p, ":"); ok && s == step {
			if f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
				f.Close()
				for ctx.Err() == nil {
					if _, err := os.Stat(file); err != nil {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted at step %s: the target was left as it was", step)
	}
	return nil
}
