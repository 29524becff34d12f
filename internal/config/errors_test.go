package config

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

// child stands for a component whose Validate uses Errors.
func childValidate(bad bool) error {
	var errs Errors
	if bad {
		errs.Addf("ca_file", "%q: want a .pem file", "/etc/hosts")
		errs.Add("cert_file", errors.New("required with key_file"))
	}
	errs.Add("ignored", nil)
	return errs.Err()
}

func TestErrors(t *testing.T) {
	var errs Errors
	if errs.Err() != nil || errs.Len() != 0 {
		t.Fatalf("empty Errors: Err() = %v", errs.Err())
	}
	errs.Addf("name", "required")
	for i := range 12 {
		errs.Merge(IndexPath("destinations", i)+".tls", childValidate(i == 1 || i == 10))
	}
	errs.Merge("kafka", errors.Join(
		&FieldError{Path: "brokers", Err: errors.New("at least one")},
		errors.New("plain"),
	))
	errs.Merge("root", io.ErrUnexpectedEOF)
	errs.Merge("", childValidate(true))
	errs.Addf("name", "second error at the same path")
	errs.Add(KeyPath("grants", "a.b"), errors.New("empty"))
	errs.Add(KeyPath("grants", "alice"), errors.New("empty"))

	want := `ca_file: "/etc/hosts": want a .pem file
cert_file: required with key_file
destinations[1].tls.ca_file: "/etc/hosts": want a .pem file
destinations[1].tls.cert_file: required with key_file
destinations[10].tls.ca_file: "/etc/hosts": want a .pem file
destinations[10].tls.cert_file: required with key_file
grants.alice: empty
grants["a.b"]: empty
kafka: plain
kafka.brokers: at least one
name: required
name: second error at the same path
root: unexpected EOF`
	err := errs.Err()
	if err == nil || err.Error() != want {
		t.Fatalf("Err():\n%v\nwant\n%s", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "ca_file" {
		t.Errorf("errors.As found %+v, want the first field error", fe)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("errors.Is(io.ErrUnexpectedEOF) = false through the list")
	}
	if errs.Len() != 13 {
		t.Errorf("Len() = %d, want 13", errs.Len())
	}
}

func TestJoinPath(t *testing.T) {
	for _, tt := range []struct{ a, b, want string }{
		{"", "x", "x"}, {"x", "", "x"}, {"a", "b", "a.b"}, {"a", "[1]", "a[1]"}, {"a.b", "c.d", "a.b.c.d"},
	} {
		if got := JoinPath(tt.a, tt.b); got != tt.want {
			t.Errorf("JoinPath(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestComparePaths(t *testing.T) {
	ordered := []string{"", "a", "a.b", "a[2]", "a[10]", "a[10].b", "a[010x", "b", "b2", "b10"}
	for i := range ordered {
		for j := range ordered {
			got := comparePaths(ordered[i], ordered[j])
			if sign(got) != sign(i-j) {
				t.Errorf("comparePaths(%q, %q) = %d, want sign %d", ordered[i], ordered[j], got, sign(i-j))
			}
		}
	}
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

func ExampleErrors() {
	var errs Errors
	errs.Addf("input.path", "required for input type %s", "file")
	errs.Merge("kafka", childValidate(true))
	fmt.Println(errs.Err())
	// Output:
	// input.path: required for input type file
	// kafka.ca_file: "/etc/hosts": want a .pem file
	// kafka.cert_file: required with key_file
}
