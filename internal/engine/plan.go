package engine

// ActionKind names what an action does.
type ActionKind string

// The actions Plan can ask for.
const (
	// ActionImage runs the pre-build, the image build and the load into the nodes.
	ActionImage ActionKind = "image"
	// ActionSync copies changed files into the service's running containers.
	ActionSync ActionKind = "sync"
	// ActionDeploy applies the manifests with the built images and waits for rollouts.
	ActionDeploy ActionKind = "deploy"
	// ActionLive runs the pre-build, copies the restart rules' files into the
	// service's running containers and restarts their processes.
	ActionLive ActionKind = "live"
	// ActionCancel cancels a service's in-flight build because a newer change superseded it.
	ActionCancel ActionKind = "cancel"
)

// Action is one unit of work Plan asks the loop to start.
type Action struct {
	Kind    ActionKind
	Service string
	// Gen is the service generation (image, sync) or deploy generation the action belongs to.
	Gen int
	// Paths are the files to sync (ActionSync) or the reasons for a build (ActionImage).
	Paths []string
	// Services are the services whose workloads a deploy waits for; Images
	// maps image repositories to the refs to substitute; All says to wait for
	// every workload (manifests changed or first deploy).
	Services []string
	Images   map[string]string
	All      bool
	// Hold are the services whose workloads the deploy neither applies nor
	// prunes: waiting for dependencies, not selected, or without an image.
	Hold []string
}

// Plan decides what to start now, given the state. It is pure.
//
// Policy, in order:
//   - A change to a service whose build is running supersedes that build: the
//     build is cancelled (the newest code is what the user wants to see, and
//     Docker's layer cache makes the restart cheap), then built again.
//   - A dirty service with nothing in flight is built; services never wait
//     for each other's builds.
//   - Files covered by live-sync rules are copied into a running service
//     that has no build owed or running; before the first deploy there is
//     nothing to copy into, so they simply wait for (and are part of) the build.
//   - Changes a live update covers (restart rules) are pre-built, copied in
//     and restarted the same way once the service runs its latest image;
//     while a build or a rollout of it is owed they are part of the build.
//   - One deploy at a time. It starts when manifests changed or a new image
//     is ready, and (before the first successful deploy) only once every
//     service that can be deployed has an image, so the first apply is
//     complete. A service whose first build failed does not hold it up: its
//     workloads are held out of the apply (what ran of them keeps running).
//   - dependsOn: a service's workloads are held out of every apply until
//     each of its dependencies rolled out in this session; then it is
//     released (rolled by the next deploy) and never waits again.
func Plan(s *State) []Action {
	var out []Action
	for _, name := range s.Order {
		ss := s.Services[name]
		switch {
		case ss.InFlight != 0:
			if ss.Dirty && ss.Action == ActionImage && ss.Phase == PhaseBuilding {
				out = append(out, Action{Kind: ActionCancel, Service: name, Gen: ss.InFlight})
			}
		case ss.Dirty:
			out = append(out, Action{Kind: ActionImage, Service: name, Gen: ss.Gen, Paths: ss.Reasons})
		case len(ss.PendingSync) > 0 && ss.Deployed != nil:
			out = append(out, Action{Kind: ActionSync, Service: name, Gen: ss.Gen, Paths: ss.PendingSync})
		case len(ss.PendingLive) > 0 && ss.Deployed != nil && !ss.NeedsDeploy && !s.deployingService(name):
			out = append(out, Action{Kind: ActionLive, Service: name, Gen: ss.Gen, Paths: ss.PendingLive})
		}
	}
	if d, ok := planDeploy(s); ok {
		out = append(out, d)
	}
	return out
}

func planDeploy(s *State) (Action, bool) {
	if s.Deploying != 0 {
		return Action{}, false
	}
	var roll, rollable []string
	hold := append([]string(nil), s.Unselected...)
	for _, name := range s.Order {
		ss := s.Services[name]
		if s.held(ss) {
			hold = append(hold, name)
			continue
		}
		if ss.Built == nil {
			if !s.InitialDeployDone {
				return Action{}, false // first apply waits for every first image it can have
			}
			hold = append(hold, name) // its first image is on the way
			continue
		}
		rollable = append(rollable, name)
		if ss.NeedsDeploy {
			roll = append(roll, name)
		}
	}
	if !s.ManifestsDirty && len(roll) == 0 {
		return Action{}, false
	}
	if !s.InitialDeployDone && len(rollable) == 0 && len(s.Order) > 0 {
		return Action{}, false // no service can be deployed yet: nothing to apply for
	}
	all := s.ManifestsDirty || !s.InitialDeployDone
	if all {
		roll = rollable
	}
	return Action{Kind: ActionDeploy, Gen: s.deployGen + 1, Services: roll, Images: s.Images(), All: all, Hold: hold}, true
}
