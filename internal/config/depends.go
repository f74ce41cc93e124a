package config

import (
	"fmt"
	"sort"
	"strings"
)

// validateDependsOn checks every services[i].dependsOn: known service names,
// no duplicates, no service depending on itself, no cycle.
func (v *validator) validateDependsOn(names map[string]string) {
	known := make([]string, 0, len(names))
	for n := range names {
		known = append(known, n)
	}
	ok := true
	for i, s := range v.cfg.Services {
		seen := map[string]bool{}
		for j, d := range s.DependsOn {
			kp := fmt.Sprintf("services[%d].dependsOn[%d]", i, j)
			switch {
			case d == s.Name:
				v.errorf(kp, "service %q cannot depend on itself", d)
				ok = false
			case names[d] == "":
				v.errorf(kp, "unknown service %q%s", d, suggestService(d, known))
				ok = false
			case seen[d]:
				v.errorf(kp, "%q is listed twice", d)
			}
			seen[d] = true
		}
	}
	if !ok {
		return
	}
	if cycle := findCycle(v.cfg.Services); len(cycle) > 0 {
		i := serviceIndex(v.cfg.Services, cycle[0])
		j := indexOf(v.cfg.Services[i].DependsOn, cycle[1])
		v.errorf(fmt.Sprintf("services[%d].dependsOn[%d]", i, j), "dependency cycle: %s", strings.Join(cycle, " → "))
	}
}

func suggestService(name string, known []string) string {
	if len(known) == 0 {
		return ""
	}
	s := suggest(name, known)
	return strings.Replace(s, "valid keys here", "services", 1)
}

func serviceIndex(svcs []Service, name string) int {
	for i, s := range svcs {
		if s.Name == name {
			return i
		}
	}
	return -1
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// findCycle returns a dependency cycle as a path that starts and ends with
// the same service (a → b → a), or nil. Services are visited in file order,
// so the cycle reported is stable.
func findCycle(svcs []Service) []string {
	deps := map[string][]string{}
	for _, s := range svcs {
		deps[s.Name] = s.DependsOn
	}
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		state[n] = active
		stack = append(stack, n)
		for _, d := range deps[n] {
			switch state[d] {
			case active:
				i := indexOf(stack, d)
				return append(append([]string(nil), stack[i:]...), d)
			case unseen:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return nil
	}
	for _, s := range svcs {
		if state[s.Name] == unseen {
			if c := visit(s.Name); c != nil {
				return c
			}
		}
	}
	return nil
}

// Select returns the names of the services to run for `devloop up a b`: the
// named ones and everything they depend on, transitively, in file order.
// No names selects every service. An unknown name is an error.
func (c *Config) Select(names []string) ([]string, error) {
	if len(names) == 0 {
		out := make([]string, 0, len(c.Services))
		for _, s := range c.Services {
			out = append(out, s.Name)
		}
		return out, nil
	}
	want := map[string]bool{}
	var known []string
	for _, s := range c.Services {
		known = append(known, s.Name)
	}
	var unknown []string
	var add func(n string)
	add = func(n string) {
		if want[n] {
			return
		}
		want[n] = true
		s, _ := c.Service(n)
		for _, d := range s.DependsOn {
			add(d)
		}
	}
	for _, n := range names {
		if _, ok := c.Service(n); !ok {
			unknown = append(unknown, fmt.Sprintf("%q%s", n, suggestService(n, known)))
			continue
		}
		add(n)
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("no such service in %s: %s (services: %s)", c.Path, strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	var out []string
	for _, s := range c.Services {
		if want[s.Name] {
			out = append(out, s.Name)
		}
	}
	return out, nil
}
