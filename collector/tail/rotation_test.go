package tail

import (
	"os"
	"testing"
)

// rotateTo is rotate followed by the creation of the new file at path,
// holding lines (auditd: close, shift, create).
func rotateTo(t *testing.T, path string, lines string) {
	t.Helper()
	rotate(t, path)
	appendFile(t, path, lines)
}

// expectDrained asserts that f has nothing more to read and reported no
// loss.
func expectDrained(t *testing.T, f *Follower, g *gapLog) {
	t.Helper()
	expectNothing(t, f)
	if g.len() != 0 {
		t.Fatalf("gaps: %+v", g.gaps)
	}
}

// TestRotationsBetweenPolls rotates the followed file once or more between
// two reads of the follower, deterministically: every line arrives once, in
// order, and nothing is reported lost.
func TestRotationsBetweenPolls(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
		want   []string
	}{
		{"rotated twice, both old files with unread lines", func(t *testing.T, path string) {
			appendFile(t, path, "a2\n")
			rotateTo(t, path, "b1\nb2\n")
			rotateTo(t, path, "c1\n")
		}, []string{"a2", "b1", "b2", "c1"}},
		{"rotated three times, one file empty", func(t *testing.T, path string) {
			rotateTo(t, path, "")
			rotateTo(t, path, "c1\n")
			rotateTo(t, path, "d1\n")
		}, []string{"c1", "d1"}},
		{"new file already longer than the old offset", func(t *testing.T, path string) {
			appendFile(t, path, "a2\n")
			rotateTo(t, path, "b1 a line longer than all of the old file together\nb2\n")
		}, []string{"a2", "b1 a line longer than all of the old file together", "b2"}},
		{"rotated twice, the path missing (between rename and create)", func(t *testing.T, path string) {
			appendFile(t, path, "a2\n")
			rotateTo(t, path, "b1\n")
			rotate(t, path)
		}, []string{"a2", "b1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := t.TempDir() + "/audit.log"
			appendFile(t, path, "a1\n")
			f, g := open(t, path, Position{}, Options{})
			equal(t, mustRead(t, f, 1), []string{"a1"})
			expectNothing(t, f) // at the end of the live file
			tt.change(t, path)
			equal(t, mustRead(t, f, len(tt.want)), tt.want)
			expectNothing(t, f)
			appendFile(t, path, "last\n")
			equal(t, mustRead(t, f, 1), []string{"last"})
			expectDrained(t, f, g)
		})
	}
}

// TestRotationWhileSwitching rotates the file at the moments of a switch
// of file that a concurrent writer can hit (TestConcurrentWriterRotating
// lost 250 lines under -race in CI: "got line 1750, want line 1500"):
//
//   - the path is missing when the follower opens it (auditd renamed it and
//     has not created the new one yet): the follower queued the rotated
//     files only, and after them opened whatever the path held by then,
//     skipping a file rotated in the meantime;
//   - the path rotates twice after the follower opened it and before it
//     listed the rotated files: the follower read the newest rotated file
//     before the one it had opened at the path;
//   - the path rotates twice after the follower listed the directory and
//     before it opened the files listed: it opened, by the names listed,
//     files newer than those the names held when listed, missed the
//     oldest (its own file among them), and read the newest first.
func TestRotationWhileSwitching(t *testing.T) {
	tests := []struct {
		name  string
		point hookPoint
		// atPoint changes the directory at point; the follower has read
		// a1 and the file was rotated once (b1 at the path).
		atPoint func(t *testing.T, path string)
		// afterB changes it once b1 was read.
		afterB func(t *testing.T, path string)
		want   []string
	}{
		{
			name:    "path missing when opened, rotated again while the rotated files are read",
			point:   hookBeforeLive,
			atPoint: func(t *testing.T, path string) { rotate(t, path) },
			afterB: func(t *testing.T, path string) {
				appendFile(t, path, "c1\n")
				rotateTo(t, path, "d1\n")
			},
			want: []string{"c1", "d1"},
		},
		{
			name:  "path rotated twice between its open and the listing",
			point: hookAfterLive,
			atPoint: func(t *testing.T, path string) {
				rotateTo(t, path, "c1\n")
				rotateTo(t, path, "d1\n")
			},
			want: []string{"c1", "d1"},
		},
		{
			// What TestConcurrentWriterRotating caught: the follower
			// lagged behind; the oldest files, cur among them, moved to
			// names the listing did not hold, and the files opened by
			// the names listed were newer than the file at the path.
			name:  "path rotated twice between the listing and the opens",
			point: hookListed,
			atPoint: func(t *testing.T, path string) {
				rotateTo(t, path, "c1\n")
				rotateTo(t, path, "d1\n")
			},
			want: []string{"c1", "d1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := t.TempDir() + "/audit.log"
			appendFile(t, path, "a1\n")
			f, g := open(t, path, Position{}, Options{})
			equal(t, mustRead(t, f, 1), []string{"a1"})
			expectNothing(t, f)
			rotateTo(t, path, "b1\n")
			fired := false
			f.hook = func(p hookPoint) {
				if p == tt.point && !fired {
					fired = true
					tt.atPoint(t, path)
				}
			}
			equal(t, mustRead(t, f, 1), []string{"b1"})
			if !fired {
				t.Fatal("the follower did not reach the hook")
			}
			if tt.afterB != nil {
				tt.afterB(t, path)
			}
			equal(t, mustRead(t, f, len(tt.want)), tt.want)
			expectDrained(t, f, g)
		})
	}
}

// TestRestartPathMissingThenRotated restarts in a rotated file while the
// path is missing; while the follower reads the rotated files, the path is
// created and rotated again. The file rotated meanwhile used to be skipped:
// once the queued files were read, the follower opened whatever the path
// held by then.
func TestRestartPathMissingThenRotated(t *testing.T) {
	path := t.TempDir() + "/audit.log"
	appendFile(t, path, "a1\na2\n")
	f, _ := open(t, path, Position{}, Options{})
	_, pos := readN(t, f, 1)
	f.Close()

	rotateTo(t, path, "b1\n")
	rotate(t, path) // path missing: audit.log.2 = a, .1 = b

	f, g := open(t, path, pos, Options{})
	equal(t, mustRead(t, f, 2), []string{"a2", "b1"})
	appendFile(t, path, "c1\n")
	rotateTo(t, path, "d1\n")
	equal(t, mustRead(t, f, 2), []string{"c1", "d1"})
	expectDrained(t, f, g)
}

// TestRestartAfterEachLine checks, after two rotations between polls, that
// a restart from the End of any line read resumes with the next line: no
// line lost, none read twice.
func TestRestartAfterEachLine(t *testing.T) {
	path := t.TempDir() + "/audit.log"
	appendFile(t, path, "a1\n")
	f, _ := open(t, path, Position{}, Options{})
	l := next(t, f)
	ends := []Position{l.End}
	want := []string{"a1", "a2", "b1", "b2", "c1"}
	appendFile(t, path, "a2\n")
	rotateTo(t, path, "b1\nb2\n")
	rotateTo(t, path, "c1\n")
	for range want[1:] {
		ends = append(ends, next(t, f).End)
	}
	f.Close()
	for i, end := range ends {
		t.Run("after "+want[i], func(t *testing.T) {
			f, g := open(t, path, end, Options{})
			equal(t, mustRead(t, f, len(want)-i-1), want[i+1:])
			expectDrained(t, f, g)
		})
	}
}

// copyTruncate does what logrotate's copytruncate does: copy the file to
// NAME.1, then truncate it in place.
func copyTruncate(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".1", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
}

// TestCopyTruncate: the lines of a file that copytruncate truncated before
// the follower read them are read from the copy (they were reported lost),
// then the truncated file from its start; also after a restart from a
// checkpoint taken before the truncation.
func TestCopyTruncate(t *testing.T) {
	tests := []struct {
		name    string
		restart bool
	}{
		{"while following", false},
		{"while stopped", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := t.TempDir() + "/audit.log"
			appendFile(t, path, "a1 the first line, long enough for a full fingerprint of its file\na2\n")
			f, g := open(t, path, Position{}, Options{})
			_, pos := readN(t, f, 2)
			appendFile(t, path, "a3 begun") // a partial line, held
			expectNothing(t, f)
			if tt.restart {
				f.Close()
			}
			appendFile(t, path, " and ended\na4\n")
			copyTruncate(t, path)
			appendFile(t, path, "b1\n")
			if tt.restart {
				f, g = open(t, path, pos, Options{})
			}
			equal(t, mustRead(t, f, 3), []string{"a3 begun and ended", "a4", "b1"})
			expectDrained(t, f, g)
		})
	}
}
