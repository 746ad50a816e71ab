package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// curlSection returns the shell blocks of README.md's "Try it with curl" section, in order.
func curlSection(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Try it with curl\n")
	if !ok {
		t.Fatal(`README.md has no "## Try it with curl" section`)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var blocks []string
	for {
		_, rest, ok := strings.Cut(section, "```sh\n")
		if !ok {
			return blocks
		}
		block, after, ok := strings.Cut(rest, "```")
		if !ok {
			t.Fatal("README.md: an unclosed code block")
		}
		blocks = append(blocks, block)
		section = after
	}
}

// TestReadmeCurlExamples runs the README's curl walk-through, as printed, against a running
// server in the directory where it keeps its data directory; then once more against the same
// server, as a reader who tries it again would.
func TestReadmeCurlExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	blocks := curlSection(t)
	if len(blocks) < 6 {
		t.Fatalf("found %d shell blocks in the curl section", len(blocks))
	}
	bin := buildServer(t)
	dir := t.TempDir()
	s := startServer(t, bin, dir)
	defer s.stop(t)

	script := "set -euo pipefail\n" + strings.Join(blocks, "\n")
	for _, run := range []string{"first", "second"} {
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PARLEY_URL=") // the demo file sets it
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s run: the README's curl examples failed: %v\n%s\nserver log:\n%s", run, err, out, s.logs)
		}
		for _, want := range []string{
			`"parsed":"Hello from Chapi"`,  // Chapi send and list
			`"text":"My invoice is wrong"`, // Genesys
			`"text":"Let me look, Ann."`,   // Nexmo's answer, seen by the Genesys client
			`"Hi from the widget"`,         // Airy, in the resumed history
			`"parsed":"Let me look, Ann."`, // Chapi reading the Genesys chat by its id
		} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s run: the walk-through's output lacks %s:\n%s", run, want, out)
			}
		}
	}
}
