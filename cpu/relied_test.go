package cpu

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestRelied(t *testing.T) {
	host := []string{"sse2", "ssse3", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512bw", "gfni", "sha_ni", "xsavec"}
	glibcOff := "GLIBC_TUNABLES=glibc.malloc.check=0:glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-XSAVEC,Prefer_No_VZEROUPPER"
	for _, tc := range []struct {
		name string
		env  []string
		rt   Runtimes
		want []string
	}{
		{"nothing switched off", []string{"HOME=/root"}, Runtimes{Glibc: true}, host},
		{"glibc told, glibc present", []string{glibcOff}, Runtimes{Glibc: true},
			[]string{"sse2", "ssse3", "avx", "avx2", "fma", "gfni", "sha_ni"}},
		{"glibc told, a Go program without glibc", []string{glibcOff}, Runtimes{Go: true}, host},
		{"glibc told, cgo program whose Go runtime was not", []string{glibcOff}, Runtimes{Glibc: true, Go: true},
			[]string{"sse2", "ssse3", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512bw", "gfni", "sha_ni"}},
		{"both told", []string{glibcOff, "GODEBUG=cpu.avx512f=off,cpu.avx512vl=off,cpu.avx512bw=off,madvdontneed=1"}, Runtimes{Glibc: true, Go: true},
			[]string{"sse2", "ssse3", "avx", "avx2", "fma", "gfni", "sha_ni"}},
		{"GODEBUG last setting wins", []string{"GODEBUG=cpu.avx2=off,cpu.avx2=on"}, Runtimes{Go: true}, host},
		{"GODEBUG cpu.all", []string{"GODEBUG=cpu.all=off"}, Runtimes{Go: true},
			[]string{"sse2", "gfni", "xsavec"}},
		{"CRYO_CPU level, glibc told", []string{glibcOff, "CRYO_CPU=x86-64-v3"}, Runtimes{Glibc: true},
			[]string{"sse2", "ssse3", "avx", "avx2", "fma"}},
		{"CRYO_CPU level does not overrule glibc", []string{"CRYO_CPU=x86-64-v3"}, Runtimes{Glibc: true},
			[]string{"sse2", "ssse3", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512bw", "xsavec"}},
		{"CRYO_CPU features", []string{"CRYO_CPU=-gfni,-sha_ni"}, Runtimes{},
			[]string{"sse2", "ssse3", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512bw", "xsavec"}},
		{"CRYO_CPU without any runtime", []string{"CRYO_CPU=x86-64-v2"}, Runtimes{}, []string{"sse2", "ssse3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Relied("amd64", host, tc.env, tc.rt)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.Features, tc.want) {
				t.Errorf("features %v, want %v (off: %v)", r.Features, tc.want, r.Off)
			}
			if len(r.Features)+len(r.Off) != len(host) {
				t.Errorf("%d recorded + %d off != %d host features", len(r.Features), len(r.Off), len(host))
			}
		})
	}
}

func TestReliedBadSwitch(t *testing.T) {
	for _, v := range []string{"x86-64-v5", "avx2", "-avx3", "-"} {
		if _, err := Relied("amd64", []string{"sse2"}, []string{"CRYO_CPU=" + v}, Runtimes{}); err == nil || !strings.Contains(err.Error(), "CRYO_CPU") {
			t.Errorf("CRYO_CPU=%s: err %v, want one naming CRYO_CPU", v, err)
		}
	}
	r, err := Relied("arm64", []string{"fp", "asimd", "sve"}, []string{"CRYO_CPU=-sve", "GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2"}, Runtimes{Glibc: true})
	if err != nil || !reflect.DeepEqual(r.Features, []string{"fp", "asimd"}) {
		t.Errorf("arm64: %v %v", r.Features, err)
	}
}

func TestAdvice(t *testing.T) {
	missing := []string{"avx512f", "sha_ni", "gfni"}
	for _, tc := range []struct {
		rt   Runtimes
		want string
	}{
		{Runtimes{Glibc: true, Go: true}, "start the process with GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F GODEBUG=cpu.avx512f=off,cpu.sha=off CRYO_CPU=-avx512f,-sha_ni,-gfni"},
		{Runtimes{Glibc: true}, "start the process with GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F CRYO_CPU=-avx512f,-sha_ni,-gfni"},
		{Runtimes{}, "start the process with CRYO_CPU=-avx512f,-sha_ni,-gfni"},
		{RuntimesNamed([]string{"go"}), "start the process with GODEBUG=cpu.avx512f=off,cpu.sha=off CRYO_CPU=-avx512f,-sha_ni,-gfni"},
		{RuntimesNamed(nil), "start the process with GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F GODEBUG=cpu.avx512f=off,cpu.sha=off CRYO_CPU=-avx512f,-sha_ni,-gfni"},
	} {
		if got := Advice("amd64", missing, tc.rt); got != tc.want {
			t.Errorf("%+v:\ngot  %s\nwant %s", tc.rt, got, tc.want)
		}
	}
}

// TestTableNames: every feature name is unique, and every name a switch
// of glibc or Go maps to is taken by parse back to that feature.
func TestTableNames(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range x86Features {
		if seen[f.name] {
			t.Errorf("%s listed twice", f.name)
		}
		seen[f.name] = true
		if f.glibc != "" {
			s, _ := parseSwitches("amd64", []string{"GLIBC_TUNABLES=glibc.cpu.hwcaps=-" + f.glibc}, Runtimes{Glibc: true})
			if !s.glibc[f.name] {
				t.Errorf("glibc's -%s does not turn off %s", f.glibc, f.name)
			}
		}
		if f.goName != "" {
			s, _ := parseSwitches("amd64", []string{"GODEBUG=cpu." + f.goName + "=off"}, Runtimes{Go: true})
			if !s.goOff[f.name] {
				t.Errorf("GODEBUG cpu.%s=off does not turn off %s", f.goName, f.name)
			}
		}
	}
}

// TestRuntimesNames: the names an image records come back as the same
// runtimes, "none" included; an image without them gets both.
func TestRuntimesNames(t *testing.T) {
	for _, rt := range []Runtimes{{}, {Glibc: true}, {Go: true}, {Glibc: true, Go: true}} {
		b, err := json.Marshal(rt.Names())
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		if err := json.Unmarshal(b, &names); err != nil {
			t.Fatal(err)
		}
		if got := RuntimesNamed(names); got != rt {
			t.Errorf("%+v recorded as %s reads back as %+v", rt, b, got)
		}
	}
	if got := RuntimesNamed(nil); got != (Runtimes{Glibc: true, Go: true}) {
		t.Errorf("not recorded: %+v, want both", got)
	}
}

// TestRequired: an old image's record of every cpuinfo flag is checked
// only for the table's features on amd64; a new image's whole record is,
// and arm64 checks all.
func TestRequired(t *testing.T) {
	old := []string{"fpu", "constant_tsc", "avx2", "hypervisor", "sha_ni", "arch_perfmon"}
	if got, want := Required("amd64", old, true), []string{"fpu", "avx2", "sha_ni"}; !reflect.DeepEqual(got, want) {
		t.Errorf("amd64, legacy: %v, want %v", got, want)
	}
	newer := []string{"fpu", "avx2", "avx10"}
	if got := Required("amd64", newer, false); !reflect.DeepEqual(got, newer) {
		t.Errorf("amd64: %v, want %v", got, newer)
	}
	if got := Required("arm64", []string{"fp", "asimd"}, true); !reflect.DeepEqual(got, []string{"fp", "asimd"}) {
		t.Errorf("arm64: %v", got)
	}
}
