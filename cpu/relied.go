package cpu

import (
	"fmt"
	"strings"
)

// EnvCPU is the variable of a process's start-up environment in which its
// user declares the CPU features the process's own code does without
// (see the package comment).
const EnvCPU = "CRYO_CPU"

// Runtimes are the feature-dispatching runtimes found in a process.
type Runtimes struct {
	Glibc bool // maps glibc's libc.so.6: its ifuncs chose at start-up
	Go    bool // a Go program: internal/cpu chose at start-up
}

// Names lists rt as an image records it: never nil, so that "none" is
// told from "not recorded".
func (rt Runtimes) Names() []string {
	out := []string{}
	if rt.Glibc {
		out = append(out, "glibc")
	}
	if rt.Go {
		out = append(out, "go")
	}
	return out
}

// RuntimesNamed is the inverse of Names; nil (an image that did not
// record them) means both, as the more complete advice.
func RuntimesNamed(names []string) Runtimes {
	if names == nil {
		return Runtimes{Glibc: true, Go: true}
	}
	var rt Runtimes
	for _, n := range names {
		rt.Glibc = rt.Glibc || n == "glibc"
		rt.Go = rt.Go || n == "go"
	}
	return rt
}

// Recorded is what freeze records of the CPU for one process.
type Recorded struct {
	Features []string // the host features the process may rely on
	Off      []string // host features left out, each "name (why)"
}

// Relied applies the switches of environ, a process's start-up
// environment, to host, the features of the CPU it runs on: the features
// it may rely on are the host's but those that some switch turned off and
// that no runtime present and free to dispatch on them on its own kept.
// Only amd64 knows glibc's and Go's switches; arm64 knows CRYO_CPU's.
func Relied(arch string, host []string, environ []string, rt Runtimes) (Recorded, error) {
	sw, err := parseSwitches(arch, environ, rt)
	if err != nil {
		return Recorded{}, err
	}
	var r Recorded
	for _, name := range host {
		why, off := sw.off(arch, name)
		if off {
			r.Off = append(r.Off, name+" ("+why+")")
			continue
		}
		r.Features = append(r.Features, name)
	}
	return r, nil
}

// switches are the features each switch of the environment turned off.
type switches struct {
	rt    Runtimes
	glibc map[string]bool // cpuinfo names, from GLIBC_TUNABLES glibc.cpu.hwcaps
	goOff map[string]bool // cpuinfo names, from GODEBUG cpu.NAME=off
	goAll bool            // GODEBUG cpu.all=off
	cryo  map[string]bool // cpuinfo names, from CRYO_CPU
	level int             // CRYO_CPU=x86-64-vN, 0 if none
}

func (s *switches) off(arch, name string) (string, bool) {
	var by []string
	if s.cryo[name] {
		by = append(by, EnvCPU)
	}
	if s.level > 0 {
		if f, ok := x86Lookup(name); ok && (f.minLevel == 0 || f.minLevel > s.level) {
			by = append(by, fmt.Sprintf("%s=x86-64-v%d", EnvCPU, s.level))
		}
	}
	if arch != "amd64" {
		return strings.Join(by, ", "), len(by) > 0
	}
	f, known := x86Lookup(name)
	if !known {
		return strings.Join(by, ", "), len(by) > 0
	}
	// A runtime in the process that dispatches on the feature and was
	// not told to avoid it may use it whatever else was switched off.
	if s.rt.Glibc && f.glibc != "" {
		if !s.glibc[name] {
			return "", false
		}
		by = append(by, "GLIBC_TUNABLES")
	}
	if s.rt.Go && f.goName != "" {
		if !s.goOff[name] && !s.goAll {
			return "", false
		}
		by = append(by, "GODEBUG")
	}
	return strings.Join(by, ", "), len(by) > 0
}

func parseSwitches(arch string, environ []string, rt Runtimes) (*switches, error) {
	s := &switches{rt: rt, glibc: map[string]bool{}, goOff: map[string]bool{}, cryo: map[string]bool{}}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch k {
		case "GLIBC_TUNABLES":
			s.parseGlibc(v)
		case "GODEBUG":
			s.parseGo(v)
		case EnvCPU:
			if err := s.parseCryo(arch, v); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// parseGlibc reads glibc.cpu.hwcaps=-NAME,... out of GLIBC_TUNABLES
// (colon-separated tunables; glibc's sysdeps/x86/cpu-tunables.c).
func (s *switches) parseGlibc(v string) {
	for _, t := range strings.Split(v, ":") {
		name, val, ok := strings.Cut(t, "=")
		if !ok || name != "glibc.cpu.hwcaps" {
			continue
		}
		for _, item := range strings.Split(val, ",") {
			g, ok := strings.CutPrefix(item, "-")
			if !ok {
				continue
			}
			for _, f := range x86Features {
				if f.glibc != "" && f.glibc == g {
					s.glibc[f.name] = true
				}
			}
		}
	}
}

// parseGo reads cpu.NAME=off out of GODEBUG (internal/cpu's
// processOptions: the last setting of a name wins).
func (s *switches) parseGo(v string) {
	for _, t := range strings.Split(v, ",") {
		name, val, ok := strings.Cut(t, "=")
		key, isCPU := strings.CutPrefix(name, "cpu.")
		if !ok || !isCPU {
			continue
		}
		if key == "all" {
			s.goAll = val == "off"
			continue
		}
		for _, f := range x86Features {
			if f.goName != "" && f.goName == key {
				s.goOff[f.name] = val == "off"
			}
		}
	}
}

// parseCryo reads CRYO_CPU: a comma-separated list of x86-64-vN (no
// feature above that psABI level) and -NAME (not NAME, as cpuinfo spells
// it). An unknown item is an error: a typo must not pass for a promise.
func (s *switches) parseCryo(arch, v string) error {
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if lv, ok := strings.CutPrefix(item, "x86-64-v"); ok && arch == "amd64" {
			if len(lv) != 1 || lv[0] < '1' || lv[0] > '4' {
				return fmt.Errorf("%s=%s: unknown level %q (x86-64-v1 to x86-64-v4)", EnvCPU, v, item)
			}
			s.level = int(lv[0] - '0')
			continue
		}
		name, ok := strings.CutPrefix(item, "-")
		if !ok || name == "" {
			return fmt.Errorf("%s=%s: %q is neither x86-64-vN nor -FEATURE", EnvCPU, v, item)
		}
		if _, known := x86Lookup(name); arch == "amd64" && !known {
			return fmt.Errorf("%s=%s: unknown feature %q (names as in /proc/cpuinfo)", EnvCPU, v, name)
		}
		s.cryo[name] = true
	}
	return nil
}

// Required is the features of an image's record that a thaw checks: all
// of them, but in an amd64 image made before this package (legacy: it
// recorded no runtimes) only those of the table, for it recorded every
// /proc/cpuinfo flag, "constant_tsc" and "hypervisor" among them. A name
// this table lacks in a newer image is checked: a newer freeze may know
// more features.
func Required(arch string, recorded []string, legacy bool) []string {
	out := []string{}
	for _, f := range recorded {
		if _, known := x86Lookup(f); known || arch != "amd64" || !legacy {
			out = append(out, f)
		}
	}
	return out
}

// Missing is the features of want that have lacks, in want's order.
func Missing(want, have []string) []string {
	h := map[string]bool{}
	for _, f := range have {
		h[f] = true
	}
	var out []string
	for _, f := range want {
		if !h[f] {
			out = append(out, f)
		}
	}
	return out
}

// Advice says how to start a process with the runtimes rt so that it
// does not rely on missing: the switches of its runtimes that name them,
// and CRYO_CPU for the rest.
func Advice(arch string, missing []string, rt Runtimes) string {
	if arch != "amd64" {
		return fmt.Sprintf("start the process with %s=-%s", EnvCPU, strings.Join(missing, ",-"))
	}
	var glibc, gonames, cryo []string
	for _, name := range missing {
		f, _ := x86Lookup(name)
		if f.glibc != "" && rt.Glibc {
			glibc = append(glibc, "-"+f.glibc)
		}
		if f.goName != "" && rt.Go {
			gonames = append(gonames, "cpu."+f.goName+"=off")
		}
		cryo = append(cryo, "-"+name)
	}
	var parts []string
	if len(glibc) > 0 {
		parts = append(parts, "GLIBC_TUNABLES=glibc.cpu.hwcaps="+strings.Join(glibc, ","))
	}
	if len(gonames) > 0 {
		parts = append(parts, "GODEBUG="+strings.Join(gonames, ","))
	}
	parts = append(parts, EnvCPU+"="+strings.Join(cryo, ","))
	return "start the process with " + strings.Join(parts, " ")
}
