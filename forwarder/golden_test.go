package forwarder

import (
	"strings"
	"testing"
)

// TestWireGolden pins the wire form: PRI, the BOM that starts every MSG,
// raw_data's final LF left off (no eol parameter for it), the eol
// parameter otherwise, and a split event's part parameters.
func TestWireGolden(t *testing.T) {
	f := testFormat()
	f.MaxSize = 600
	fm, err := newFormatter(f)
	if err != nil {
		t.Fatal(err)
	}
	ev := loginEvent()
	ev.RawData = "type=USER_LOGIN msg=audit(04/12/2021 07:38:05.752:1742859) : res=success \n"
	short := ev
	noLF := *ev
	noLF.RawData = "a \r\n\x00"
	long := *ev
	long.RawData = strings.Repeat("0123456789abcde\n", 30)
	tests := []struct {
		name string
		raw  string
		want []string
	}{
		{"one record", short.RawData, []string{
			"321 <86>1 2021-04-12T07:38:05.752Z scaqar05dv0511m opctl - login [opctl@32473 req_auth_id=\"ocid1.req.oc1..aaaa\" layer=\"CPS\" event=\"login\" loginid=\"830916abb78e4157b9e45b641e34fcf6\" host=\"scaqar05dv0511m\" event_id=\"0123456789abcdef0123456789abcdef\"] \ufefftype=USER_LOGIN msg=audit(04/12/2021 07:38:05.752:1742859) : res=success ",
		}},
		{"other line ends", noLF.RawData, []string{
			"260 <86>1 2021-04-12T07:38:05.752Z scaqar05dv0511m opctl - login [opctl@32473 req_auth_id=\"ocid1.req.oc1..aaaa\" layer=\"CPS\" event=\"login\" loginid=\"830916abb78e4157b9e45b641e34fcf6\" host=\"scaqar05dv0511m\" event_id=\"0123456789abcdef0123456789abcdef\" eol=\"rn0\"] \ufeffa ",
		}},
		{"empty", "", []string{
			"251 <86>1 2021-04-12T07:38:05.752Z scaqar05dv0511m opctl - login [opctl@32473 req_auth_id=\"ocid1.req.oc1..aaaa\" layer=\"CPS\" event=\"login\" loginid=\"830916abb78e4157b9e45b641e34fcf6\" host=\"scaqar05dv0511m\" event_id=\"0123456789abcdef0123456789abcdef\" eol=\"\"]",
		}},
		{"split", long.RawData, []string{
			"547 <86>1 2021-04-12T07:38:05.752Z scaqar05dv0511m opctl - login [opctl@32473 req_auth_id=\"ocid1.req.oc1..aaaa\" layer=\"CPS\" event=\"login\" loginid=\"830916abb78e4157b9e45b641e34fcf6\" host=\"scaqar05dv0511m\" event_id=\"0123456789abcdef0123456789abcdef\" part=\"1\" parts=\"3\" offset=\"0\" length=\"480\" sha256=\"7b6d70a7d3ebf71bd535c10b361fb2b1f64545a4ad33496c021bff61ac9ed003\"] \ufeff0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n012345",
			"549 <86>1 2021-04-12T07:38:05.752Z scaqar05dv0511m opctl - login [opctl@32473 req_auth_id=\"ocid1.req.oc1..aaaa\" layer=\"CPS\" event=\"login\" loginid=\"830916abb78e4157b9e45b641e34fcf6\" host=\"scaqar05dv0511m\" event_id=\"0123456789abcdef0123456789abcdef\" part=\"2\" parts=\"3\" offset=\"182\" length=\"480\" sha256=\"7b6d70a7d3ebf71bd535c10b361fb2b1f64545a4ad33496c021bff61ac9ed003\"] \ufeff6789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789ab",
			"482 <86>1 2021-04-12T07:38:05.752Z scaqar05dv0511m opctl - login [opctl@32473 req_auth_id=\"ocid1.req.oc1..aaaa\" layer=\"CPS\" event=\"login\" loginid=\"830916abb78e4157b9e45b641e34fcf6\" host=\"scaqar05dv0511m\" event_id=\"0123456789abcdef0123456789abcdef\" part=\"3\" parts=\"3\" offset=\"364\" length=\"480\" sha256=\"7b6d70a7d3ebf71bd535c10b361fb2b1f64545a4ad33496c021bff61ac9ed003\"] \ufeffcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde\n0123456789abcde",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := *ev
			e.RawData = tc.raw
			frames, err := fm.frames(&e)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != len(tc.want) {
				t.Fatalf("%d frames, want %d", len(frames), len(tc.want))
			}
			for i, fr := range frames {
				if string(fr) != tc.want[i] {
					t.Errorf("frame %d:\n got %q\nwant %q", i, fr, tc.want[i])
				}
			}
		})
	}
}
