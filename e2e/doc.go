// Package e2e holds cryo's end-to-end tests and benchmarks: they build
// bin/freeze and bin/thaw and the C victim programs in ../testdata, freeze
// running victims into self-restoring executables and thaw them, over the
// command-line contract only.
//
//	go test ./e2e                                     # the tests
//	go test ./e2e -run '^$' -bench . -benchtime 5x    # the benchmarks
//
// Set CRYO_E2E_BIN_DIR to a directory holding freeze and thaw to test
// those binaries instead of building them, and CRYO_E2E_VICTIM_DIR to a
// directory of prebuilt victims (named as victimFile names them) to run
// without gcc, as the arm64 guest of scripts/arm64 does. With CI=true, a
// test that would skip for lack of ptrace (or of a static libc) fails
// instead.
package e2e
