package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/auditpipe/auditpipe/policy"
	"github.com/auditpipe/auditpipe/policy/client"
)

func compartmentTable(o *output, v any, cs ...policy.Compartment) error {
	rows := make([][]string, len(cs))
	for i, c := range cs {
		rows[i] = []string{c.ID, c.Name, c.ParentID, strconv.FormatInt(c.Version, 10)}
	}
	return o.table(v, []string{"ID", "NAME", "PARENT", "ETAG"}, rows)
}

// compartmentCommands are `auditpipe compartment …`.
func compartmentCommands() map[string]command {
	var (
		in       policy.CompartmentInput
		parent   string
		subtree  bool
		lo       listOpts
		im       ifMatchFlag
		name     string
		desc     string
		moveTo   string
		idFlag   = func(fs *flag.FlagSet) { fs.StringVar(&in.ID, "id", "", "the compartment's `ID` (default: generated)") }
		nameFlag = func(fs *flag.FlagSet, p *string) { fs.StringVar(p, "name", "", "`NAME`") }
	)
	return map[string]command{
		"create": policyCommand("compartment create", "create a compartment", sub{synopsis: "--name NAME [--id ID] [--parent ID] [--description TEXT]",
			flags: func(fs *flag.FlagSet) {
				idFlag(fs)
				nameFlag(fs, &in.Name)
				fs.StringVar(&in.ParentID, "parent", "", "the parent compartment's `ID` (default: a root)")
				fs.StringVar(&in.Description, "description", "", "`TEXT`")
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				cm, err := c.CreateCompartment(ctx, in)
				if err != nil {
					return err
				}
				return s.out.object(cm)
			}}),
		"list": policyCommand("compartment list", "list compartments (newest first)", sub{synopsis: "[--parent ID [--subtree]] [--limit N] [--page TOKEN | --all]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&parent, "parent", "", "children of this compartment `ID` (with --subtree: it and everything under it)")
				fs.BoolVar(&subtree, "subtree", false, "every compartment under --parent")
				lo.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				items, err := pages(ctx, &lo, s, map[string]string{"compartmentId": parent, "compartmentIdInSubtree": boolParam(subtree)}, c.ListCompartments)
				if err != nil {
					return err
				}
				return compartmentTable(s.out, items, items...)
			}}),
		"show": policyCommand("compartment show", "show a compartment", sub{synopsis: "ID", args: 1,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				cm, err := c.GetCompartment(ctx, s.args[0])
				if err != nil {
					return err
				}
				return s.out.object(cm)
			}}),
		"update": policyCommand("compartment update", "change a compartment's name, description or parent", sub{synopsis: "ID [--name NAME] [--description TEXT] [--parent ID] [--if-match ETAG]", args: 1,
			flags: func(fs *flag.FlagSet) {
				nameFlag(fs, &name)
				fs.StringVar(&desc, "description", "", "`TEXT`")
				fs.StringVar(&moveTo, "parent", "", "move it under this compartment `ID` (\"\" makes it a root)")
				im.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				var u policy.CompartmentUpdate
				if s.set["name"] {
					u.Name = &name
				}
				if s.set["description"] {
					u.Description = &desc
				}
				if s.set["parent"] {
					u.ParentID = &moveTo
				}
				v, err := im.version(func() (int64, error) { cm, err := c.GetCompartment(ctx, s.args[0]); return cm.Version, err })
				if err != nil {
					return err
				}
				cm, err := c.UpdateCompartment(ctx, s.args[0], v, u)
				if err != nil {
					return err
				}
				return s.out.object(cm)
			}}),
		"delete": policyCommand("compartment delete", "delete an empty compartment", sub{synopsis: "ID [--if-match ETAG]", args: 1,
			flags: im.register,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				v, err := im.version(func() (int64, error) { cm, err := c.GetCompartment(ctx, s.args[0]); return cm.Version, err })
				if err != nil {
					return err
				}
				if err := c.DeleteCompartment(ctx, s.args[0], v); err != nil {
					return err
				}
				fmt.Fprintf(s.out.w, "deleted compartment %s\n", s.args[0])
				return nil
			}}),
	}
}

func boolParam(b bool) string {
	if b {
		return "true"
	}
	return ""
}

// hostFlags are repeated --host NAME=LAYER.
type hostFlags []policy.Host

func (h *hostFlags) String() string {
	var parts []string
	for _, x := range *h {
		parts = append(parts, x.Name+"="+x.Layer)
	}
	return strings.Join(parts, ",")
}

func (h *hostFlags) Set(v string) error {
	name, layer, ok := strings.Cut(v, "=")
	if !ok || name == "" || layer == "" {
		return fmt.Errorf("want NAME=LAYER (a layer of CPS, HOST, CELL, GUESTVM, SWITCH, ILOM), got %q", v)
	}
	*h = append(*h, policy.Host{Name: name, Layer: strings.ToUpper(layer)})
	return nil
}

func hostsText(hs []policy.Host) string {
	var parts []string
	for _, h := range hs {
		parts = append(parts, h.Name+"="+h.Layer)
	}
	return strings.Join(parts, ",")
}

func resourceTable(o *output, v any, rs ...policy.Resource) error {
	rows := make([][]string, len(rs))
	for i, r := range rs {
		rows[i] = []string{r.ID, r.Name, r.ResourceType, r.CompartmentID, hostsText(r.Hosts), strconv.FormatInt(r.Version, 10)}
	}
	return o.table(v, []string{"ID", "NAME", "TYPE", "COMPARTMENT", "HOSTS", "ETAG"}, rows)
}

// resourceCommands are `auditpipe resource …`.
func resourceCommands() map[string]command {
	var (
		in      policy.ResourceInput
		hosts   hostFlags
		lo      listOpts
		subtree bool
		im      ifMatchFlag
		name    string
		comp    string
	)
	show := func(ctx context.Context, c *client.Client, s *subEnv) error {
		r, err := c.GetResource(ctx, s.args[0])
		if err != nil {
			return err
		}
		return s.out.object(r)
	}
	read := func(ctx context.Context, c *client.Client, id string) func() (int64, error) {
		return func() (int64, error) { r, err := c.GetResource(ctx, id); return r.Version, err }
	}
	return map[string]command{
		"create": policyCommand("resource create", "create a resource (a system under operator control) with its hosts", sub{
			synopsis: "--id ID --name NAME --type TYPE --compartment ID --host NAME=LAYER [--host …]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&in.ID, "id", "", "the resource's own `ID` (an infrastructure's OCID, a cluster's name)")
				fs.StringVar(&in.Name, "name", "", "`NAME`")
				fs.StringVar(&in.ResourceType, "type", "", "resource `TYPE`: "+strings.Join(policy.ResourceTypes(), ", "))
				fs.StringVar(&in.CompartmentID, "compartment", "", "compartment `ID`")
				fs.Var(&hosts, "host", "a host as `NAME=LAYER` (repeat for each)")
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				in.Hosts = hosts
				r, err := c.CreateResource(ctx, in)
				if err != nil {
					return err
				}
				return s.out.object(r)
			}}),
		"list": policyCommand("resource list", "list resources (newest first)", sub{synopsis: "[--compartment ID [--subtree]] [--type TYPE] [--limit N] [--page TOKEN | --all]",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&comp, "compartment", "", "in this compartment `ID`")
				fs.BoolVar(&subtree, "subtree", false, "and the compartments under it")
				fs.StringVar(&in.ResourceType, "type", "", "of this resource `TYPE`")
				lo.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				items, err := pages(ctx, &lo, s, map[string]string{"compartmentId": comp, "compartmentIdInSubtree": boolParam(subtree), "resourceType": in.ResourceType}, c.ListResources)
				if err != nil {
					return err
				}
				return resourceTable(s.out, items, items...)
			}}),
		"show": policyCommand("resource show", "show a resource", sub{synopsis: "ID", args: 1, run: show}),
		"update": policyCommand("resource update", "change a resource's name, compartment or hosts", sub{
			synopsis: "ID [--name NAME] [--compartment ID] [--host NAME=LAYER …] [--if-match ETAG]", args: 1,
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&name, "name", "", "`NAME`")
				fs.StringVar(&comp, "compartment", "", "move it to this compartment `ID`")
				fs.Var(&hosts, "host", "the hosts, replaced, as `NAME=LAYER` (repeat for each)")
				im.register(fs)
			},
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				var u policy.ResourceUpdate
				if s.set["name"] {
					u.Name = &name
				}
				if s.set["compartment"] {
					u.CompartmentID = &comp
				}
				if s.set["host"] {
					h := []policy.Host(hosts)
					u.Hosts = &h
				}
				v, err := im.version(read(ctx, c, s.args[0]))
				if err != nil {
					return err
				}
				r, err := c.UpdateResource(ctx, s.args[0], v, u)
				if err != nil {
					return err
				}
				return s.out.object(r)
			}}),
		"delete": policyCommand("resource delete", "delete a resource that no assignment or request names", sub{synopsis: "ID [--if-match ETAG]", args: 1,
			flags: im.register,
			run: func(ctx context.Context, c *client.Client, s *subEnv) error {
				v, err := im.version(read(ctx, c, s.args[0]))
				if err != nil {
					return err
				}
				if err := c.DeleteResource(ctx, s.args[0], v); err != nil {
					return err
				}
				fmt.Fprintf(s.out.w, "deleted resource %s\n", s.args[0])
				return nil
			}}),
	}
}
