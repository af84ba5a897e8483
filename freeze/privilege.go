package freeze

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cryo-project/cryo/proc"
)

// checkPrivilege refuses, unless the caller is root, a target that runs
// with any uid or gid other than the caller's or with capabilities: a
// setuid program, or another user's process. Its image would carry
// secrets the caller may not read (the kernel refuses most such attaches
// too; this says why, before anything is touched).
func checkPrivilege(pid int) error {
	if os.Geteuid() == 0 {
		return nil
	}
	st, err := proc.Status(pid)
	if err != nil {
		return fmt.Errorf("pid %d: no such process", pid)
	}
	me := strconv.Itoa(os.Getuid())
	for _, id := range strings.Fields(st["Uid"]) {
		if id != me {
			return fmt.Errorf("pid %d runs with uid %s (real, effective, saved, fs: %s), you are uid %s: only root may freeze another user's or a setuid process",
				pid, id, st["Uid"], me)
		}
	}
	gids := strings.Fields(st["Gid"])
	for _, id := range gids {
		if len(gids) > 0 && id != gids[0] {
			return fmt.Errorf("pid %d runs with gids %s (a setgid program): only root may freeze it", pid, st["Gid"])
		}
	}
	for _, k := range []string{"CapEff", "CapPrm"} {
		if v := strings.Trim(st[k], "0"); v != "" {
			return fmt.Errorf("pid %d holds capabilities (%s %s): only root may freeze a process more privileged than you", pid, k, st[k])
		}
	}
	return nil
}
