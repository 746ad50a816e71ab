package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Values that mean something to sh unless quoted.
var awkwardValues = map[string]string{
	"QUOTE":      "it's",
	"QUOTES":     `'''`,
	"ESCAPED":    `\'`,
	"DOUBLE":     `say "hi"`,
	"DOLLAR":     "$HOME ${PATH} $1 $$",
	"COMMAND":    "$(touch pwned) `touch pwned` ; touch pwned && touch pwned | x",
	"BACKSLASH":  `a\b\\c\n\t\`,
	"SPACES":     "  two  spaces, a\ttab and trailing  ",
	"GLOB":       "* ? [a-z] ~ ~root {a,b} #not a comment !x",
	"EMPTY":      "",
	"UNICODE":    "héllo ✓ — ü",
	"CONTROL":    "bell\a escape\x1b del\x7f",
	"PERCENT":    "%s %d %%",
	"DASH":       "-n",
	"ASSIGNMENT": "A=1 B=2",
	"REDIRECT":   "<in >out 2>&1",
}

// TestDemoFileQuotesForSh: the demo file gives sh, and the server reading it back, exactly
// the bytes of every value, whatever they are.
func TestDemoFileQuotesForSh(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "parley-demo.env")
	d := &demo{file: file, vars: awkwardValues}
	if err := d.write(); err != nil {
		t.Fatal(err)
	}

	back := &demo{file: file, vars: map[string]string{}}
	if err := back.read(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(awkwardValues, back.vars); diff != "" {
		t.Errorf("read back (-written +read):\n%s", diff)
	}

	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	for name, want := range awkwardValues {
		cmd := exec.Command("sh", "-c", `. ./parley-demo.env; printf %s "$`+name+`"`)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent"}
		got, err := cmd.Output()
		if err != nil {
			t.Errorf("sh sourcing the file for %s: %v", name, err)
			continue
		}
		if string(got) != want {
			t.Errorf("sh sees %s=%q, want %q", name, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("sourcing the demo file ran a command")
	}
}

// A value that cannot come back the same from a line of sh is refused, and the file is left
// as it was.
func TestDemoFileRefusesValues(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "parley-demo.env")
	if err := (&demo{file: file, vars: map[string]string{"OK": "fine"}}).write(); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(file)
	for name, vars := range map[string]map[string]string{
		"newline":        {"V": "two\nlines"},
		"carriage":       {"V": "a\rb"},
		"NUL":            {"V": "a\x00b"},
		"too long":       {"V": strings.Repeat("x", maxShellValue+1)},
		"name with a =":  {"A=B": "x"},
		"name with a ;":  {"A;touch pwned": "x"},
		"name, a digit":  {"1A": "x"},
		"name, is empty": {"": "x"},
	} {
		if err := (&demo{file: file, vars: vars}).write(); err == nil {
			t.Errorf("%s: written", name)
		}
	}
	if after, _ := os.ReadFile(file); string(after) != string(before) {
		t.Errorf("the file changed:\n%s", after)
	}
}

func TestReadDemoLine(t *testing.T) {
	tests := []struct {
		line        string
		name, value string
		ok          bool
	}{
		{"", "", "", false},
		{"   ", "", "", false},
		{"# a comment = 'x'", "", "", false},
		{"export A='abc'", "A", "abc", true}, // as every earlier version wrote it
		{"export A='it'\\''s'", "A", "it's", true},
		{"A=plain-value_1.2:3/4", "A", "plain-value_1.2:3/4", true},
		{`A="double \"quoted\" \$x \\ \n"`, "A", `double "quoted" $x \ \n`, true},
		{`A=a\ b`, "A", "a b", true},
		{"A=", "A", "", true},
		{"A=''", "A", "", true},
		{"  export\tA='x'  ", "A", "x", true},
		{"exportA='x'", "exportA", "x", true},
		{"A='a'\"b\"c", "A", "abc", true},
		{"A=é", "A", "é", true},
	}
	_, noSh := exec.LookPath("sh")
	for _, tc := range tests {
		name, value, ok, err := readDemoLine(tc.line)
		if err != nil || name != tc.name || value != tc.value || ok != tc.ok {
			t.Errorf("readDemoLine(%q) = %q, %q, %v, %v; want %q, %q, %v", tc.line, name, value, ok, err, tc.name, tc.value, tc.ok)
		}
		if ok && noSh == nil { // sh agrees
			got, err := exec.Command("sh", "-c", tc.line+"\nprintf %s \"$"+name+"\"").Output()
			if err != nil || string(got) != value {
				t.Errorf("sh reads %q as %q, %v; readDemoLine as %q", tc.line, got, err, value)
			}
		}
	}
	for _, bad := range []string{
		"A", "export", "=x", "1A=x", "A B=x", "A-B=x",
		"A='unclosed", `A="unclosed`, `A=\`, "A=$HOME", "A=`id`", `A="$HOME"`, "A=\"`id`\"",
		"A=two words", "A=x;touch pwned", "A=x|y", "A=x&", "A=<x", "A=(x)", "A=*", "A=~", "A=x#y", "A='x' # comment",
	} {
		if name, value, ok, err := readDemoLine(bad); err == nil {
			t.Errorf("readDemoLine(%q) = %q, %q, %v; want an error", bad, name, value, ok)
		}
	}
}

// FuzzShellQuote: every value shellQuote takes reads back exactly; shellUnquote never panics,
// and what it reads quotes back to itself.
func FuzzShellQuote(f *testing.F) {
	for _, v := range awkwardValues {
		f.Add(v)
	}
	for _, w := range []string{`'a'\''b'`, `"a\"b"`, `a\ b`, `'unclosed`, `$x`} {
		f.Add(w)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if q, err := shellQuote(s); err == nil {
			back, err := shellUnquote(q)
			if err != nil || back != s {
				t.Fatalf("%q quoted %q, read back %q, %v", s, q, back, err)
			}
		} else if !strings.ContainsAny(s, "\n\r\x00") && len(s) <= maxShellValue {
			t.Fatalf("%q refused: %v", s, err)
		}
		if v, err := shellUnquote(s); err == nil {
			if q, err := shellQuote(v); err == nil {
				if back, err := shellUnquote(q); err != nil || back != v {
					t.Fatalf("%q read %q, quoted %q, read back %q, %v", s, v, q, back, err)
				}
			}
		}
	})
}
