// Command freeze writes a running process into one self-restoring
// executable:
//
//	freeze <pid> -o app.bin     # the process is now in app.bin
//	./app.bin                   # it continues where it was
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/cryo-project/cryo/files"
	"github.com/cryo-project/cryo/freeze"
	"github.com/cryo-project/cryo/progress"
	"github.com/cryo-project/cryo/restore"
)

func main() {
	// Before Main: its helper draws the thaw's bar.
	restore.NewProgress = newProgress
	restore.Main()
	app := &cli.App{
		Name:      "freeze",
		Usage:     "freeze a running process into a self-restoring executable",
		UsageText: "freeze [--leave-running] [--carry-files] [--max-file-size SIZE] -o FILE PID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the image to `FILE` (an executable, mode 0700); - writes it to standard output, a pipe (freeze PID -o - | ssh HOST thaw -)", Required: true},
			&cli.BoolFlag{Name: "leave-running", Usage: "leave the process running after the freeze (a snapshot); default: it is killed once the image is on disk"},
			&cli.BoolFlag{Name: "carry-files", Usage: "put the contents of the regular files the process has open in the image: thaw makes a missing one again, and refuses one whose contents differ"},
			&cli.StringFlag{Name: "max-file-size", Value: "256M", Usage: "the largest file whose contents freeze puts in the image (a carried or deleted file), in bytes or with a K, M or G suffix (KiB, MiB, GiB)"},
			&cli.StringFlag{Name: "tcp-established", Value: "auto", Usage: "the `POLICY` for established TCP connections: repair (the same connection, with TCP_REPAIR: needs CAP_NET_ADMIN at freeze and thaw), reset (the thawed process finds it reset, and reconnects), refuse; auto: repair when freeze may, else refuse"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print each step with its timing"},
		},
		HideHelpCommand: true,
		Action:          run,
	}
	if err := app.Run(reorder(os.Args)); err != nil {
		fmt.Fprintf(os.Stderr, "freeze: %s\n", oneLine(err))
		os.Exit(1)
	}
}

func run(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("expected one PID, got %d arguments (usage: %s)", c.NArg(), c.App.UsageText)
	}
	pid, err := strconv.Atoi(c.Args().First())
	if err != nil || pid <= 0 {
		return fmt.Errorf("%q is not a process id", c.Args().First())
	}
	// SIGINT/SIGTERM during a freeze: stop at the next step and let the
	// target go as it was.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	maxSize, err := parseSize(c.String("max-file-size"))
	if err != nil {
		return fmt.Errorf("--max-file-size: %w", err)
	}
	tcp, err := files.ParseTCPPolicy(c.String("tcp-established"))
	if err != nil {
		return err
	}
	opts := freeze.Options{Pid: pid, Output: c.String("output"), LeaveRunning: c.Bool("leave-running"),
		Files: files.DumpOptions{CarryFiles: c.Bool("carry-files"), MaxBlob: maxSize, TCPEstablished: tcp}}
	if c.Bool("verbose") {
		opts.Log = os.Stderr
	} else {
		opts.Progress = os.Stderr // shown only on a terminal
	}
	res, err := freeze.Freeze(ctx, opts)
	if err != nil {
		return err
	}
	for _, n := range res.Notes {
		fmt.Fprintf(os.Stderr, "freeze: %s\n", n)
	}
	if c.Bool("verbose") {
		fmt.Fprintf(os.Stderr, "freeze: %s: %d bytes, %d pages stored, %d zero pages skipped, target stopped %v\n",
			opts.Output, res.ImageBytes, res.Pages, res.ZeroPages, res.Stopped)
	}
	return nil
}

// reorder moves flags ahead of positional arguments so that both
// "freeze PID -o FILE" and "freeze -o FILE PID" parse (urfave/cli stops
// at the first positional argument).
func reorder(args []string) []string {
	if len(args) < 2 {
		return args
	}
	takesValue := map[string]bool{"-o": true, "--o": true, "-output": true, "--output": true,
		"-max-file-size": true, "--max-file-size": true, "-tcp-established": true, "--tcp-established": true}
	var flags, pos []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			if takesValue[a] && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	out := append([]string{args[0]}, flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}

// oneLine keeps an error to the one line a user reads (errors.Join
// separates its parts with newlines).
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// parseSize reads a size: bytes, or a number with a K, M or G suffix
// (powers of 1024; "KiB", "MB"... are read the same).
func parseSize(s string) (int64, error) {
	num := strings.TrimRight(s, "kKmMgGiBb")
	unit := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(s[len(num):], "B"), "i"))
	unit = strings.TrimSuffix(unit, "I")
	n, err := strconv.ParseInt(num, 10, 64)
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30}
	sh, ok := shift[unit]
	if err != nil || !ok || n <= 0 || n > (1<<62)>>sh {
		return 0, fmt.Errorf("%q is not a size (bytes, or a number with K, M or G)", s)
	}
	return n << sh, nil
}

// newProgress is restore.NewProgress: package progress's bar.
func newProgress(f *os.File, what string, total int64) restore.Progress {
	return progress.New(f, what, total)
}
