package cpu

import (
	"github.com/cryo-project/cryo/arch/amd64"
	"github.com/cryo-project/cryo/proc"
)

// HostFeatures is this CPU's "Features" line of /proc/cpuinfo: on arm64
// every entry is an instruction set feature (its HWCAPs).
func HostFeatures() ([]string, error) {
	return proc.CPUFlags()
}

// HostXSave is nil on arm64: its FP/SIMD regset has one size everywhere.
func HostXSave() (*amd64.XSaveLayout, error) {
	return nil, nil
}
