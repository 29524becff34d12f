package api

import (
	"net/http"
	"slices"

	"github.com/auditpipe/auditpipe/internal/auth"
	"github.com/auditpipe/auditpipe/policy"
)

func (a *API) listActions(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	q := newQuery(r, "resourceType")
	rt := q.oneOf("resourceType", policy.ResourceTypes())
	if err := q.err(); err != nil {
		return err
	}
	var out []policy.Action
	for _, act := range a.svc.Catalog().Actions() {
		if rt == "" || slices.Contains(act.ResourceTypes, rt) {
			out = append(out, act)
		}
	}
	return writeList(w, r, out, "")
}

func (a *API) getAction(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	name := r.PathValue(pAction)
	act, ok := a.svc.Catalog().Action(name)
	if !ok {
		return notFound("operator action", name)
	}
	writeJSON(w, r, http.StatusOK, act)
	return nil
}

func (a *API) createCompartment(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var in policy.CompartmentInput
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	c, err := a.svc.CreateCompartment(r.Context(), who, in)
	if err != nil {
		return err
	}
	return writeObject(w, r, c.Version, c)
}

func (a *API) listCompartments(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	q := newListQuery(r, "compartmentId", "compartmentIdInSubtree")
	f := policy.CompartmentFilter{Page: q.page()}
	id, sub := q.str("compartmentId"), q.boolean("compartmentIdInSubtree")
	if sub {
		if id == "" {
			q.errs = append(q.errs, invalidParam("compartmentIdInSubtree", "needs compartmentId"))
		}
		f.Under = id
	} else {
		f.ParentID = id
	}
	if err := q.err(); err != nil {
		return err
	}
	items, next, err := a.svc.ListCompartments(r.Context(), f)
	if err != nil {
		return err
	}
	return writeList(w, r, items, next)
}

func (a *API) getCompartment(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	c, err := a.svc.GetCompartment(r.Context(), r.PathValue(pCompartment))
	if err != nil {
		return err
	}
	return writeObject(w, r, c.Version, c)
}

func (a *API) updateCompartment(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in policy.CompartmentUpdate
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	c, err := a.svc.UpdateCompartment(r.Context(), who, r.PathValue(pCompartment), v, in)
	if err != nil {
		return err
	}
	return writeObject(w, r, c.Version, c)
}

func (a *API) deleteCompartment(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := a.svc.DeleteCompartment(r.Context(), who, r.PathValue(pCompartment), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) createResource(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var in policy.ResourceInput
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	res, err := a.svc.CreateResource(r.Context(), who, in)
	if err != nil {
		return err
	}
	return writeObject(w, r, res.Version, res)
}

func (a *API) listResources(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	q := newListQuery(r, "compartmentId", "compartmentIdInSubtree", "resourceType")
	f := policy.ResourceFilter{Page: q.page(), CompartmentID: q.str("compartmentId"), Recursive: q.boolean("compartmentIdInSubtree"),
		ResourceType: q.oneOf("resourceType", policy.ResourceTypes())}
	if err := q.err(); err != nil {
		return err
	}
	items, next, err := a.svc.ListResources(r.Context(), f)
	if err != nil {
		return err
	}
	return writeList(w, r, items, next)
}

func (a *API) getResource(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	res, err := a.svc.GetResource(r.Context(), r.PathValue(pResource))
	if err != nil {
		return err
	}
	return writeObject(w, r, res.Version, res)
}

func (a *API) updateResource(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in policy.ResourceUpdate
	if err := a.decode(w, r, &in, false); err != nil {
		return err
	}
	res, err := a.svc.UpdateResource(r.Context(), who, r.PathValue(pResource), v, in)
	if err != nil {
		return err
	}
	return writeObject(w, r, res.Version, res)
}

func (a *API) deleteResource(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	v, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := a.svc.DeleteResource(r.Context(), who, r.PathValue(pResource), v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
