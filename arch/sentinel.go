//go:build !(linux && (amd64 || arm64))

package arch

// cryo runs on linux/amd64 and linux/arm64 only.
var _ = cryo_supports_only_linux_amd64_and_arm64
