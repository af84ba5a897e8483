// Command thaw brings a frozen process back to life in the calling
// process (exec semantics: it keeps this process's PID):
//
//	thaw app.bin               # same as running ./app.bin
//	thaw --restore-pid app.bin # with its frozen pid; thaw stays its parent
//	thaw --info [--json] app.bin  # what it holds (docs/info.md)
//	freeze PID -o - | thaw -   # the image read from standard input
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/cryo-project/cryo/files"
	"github.com/cryo-project/cryo/progress"
	"github.com/cryo-project/cryo/restore"
)

func main() {
	// Before Main: its helper draws the thaw's bar.
	restore.NewProgress = newProgress
	restore.Main()
	app := &cli.App{
		Name:      "thaw",
		Usage:     "restore a process frozen by freeze",
		UsageText: "thaw [--ignore-cpu] [--allow-changed] [--fd N=PATH|N=&M]... [--restore-pid] IMAGE\n   thaw --info [--json] IMAGE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "ignore-cpu", Usage: "thaw even on a CPU that lacks features the process may use"},
			&cli.BoolFlag{Name: "allow-changed", Usage: "thaw even if files the process has open changed since the freeze"},
			&cli.StringSliceFlag{Name: "fd", Usage: "hand in fd `N=PATH` (opened with the fd's access mode) or N=&M (this process's fd M), e.g. for a pipe whose peer was another process"},
			&cli.BoolFlag{Name: "restore-pid", Usage: "give the process its frozen pid and thread ids (root); thaw stays as its parent, forwarding signals and its exit status"},
			&cli.BoolFlag{Name: "info", Usage: "print what the image holds, without running it"},
			&cli.BoolFlag{Name: "json", Usage: "with --info: one JSON document (docs/info.md)"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print each step of the restore"},
		},
		HideHelpCommand: true,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("expected one image file, got %d arguments (usage: %s)", c.NArg(), c.App.UsageText)
			}
			if c.Bool("info") || c.Bool("json") {
				if !c.Bool("info") {
					return fmt.Errorf("--json goes with --info")
				}
				return restore.PrintInfo(os.Stdout, c.Args().First(), c.Bool("json"))
			}
			if c.Bool("verbose") {
				os.Setenv("CRYO_VERBOSE", "1")
			}
			opts := restore.Options{IgnoreCPU: c.Bool("ignore-cpu"), Verbose: c.Bool("verbose"), RestorePid: c.Bool("restore-pid")}
			opts.Files.AllowChanged = c.Bool("allow-changed")
			for _, s := range c.StringSlice("fd") {
				h, err := files.ParseHandoff(s)
				if err != nil {
					return err
				}
				opts.Files.Handoffs = append(opts.Files.Handoffs, h)
			}
			return restore.Thaw(c.Args().First(), opts)
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "thaw: %s\n", oneLine(err))
		os.Exit(1)
	}
}

// oneLine keeps an error to the one line a user reads (errors.Join
// separates its parts with newlines).
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// newProgress is restore.NewProgress: package progress's bar.
func newProgress(f *os.File, what string, total int64) restore.Progress {
	return progress.New(f, what, total)
}
