package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

var _ RegistryDocker = DockerCLI{}

// Registry implements RegistryDocker.
func (d DockerCLI) Registry(ctx context.Context, name string) (RegistryInfo, error) {
	format := fmt.Sprintf(`{{.State.Running}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}},{{end}} {{index .Config.Labels %q}}`, RegistryLabel)
	out, err := d.run(ctx, "container", "inspect", "--format", format, name)
	if err != nil {
		if ctx.Err() == nil && isNoSuch(err) {
			return RegistryInfo{}, nil
		}
		return RegistryInfo{}, err
	}
	running, rest, _ := strings.Cut(strings.TrimSpace(out), " ")
	nets, label, _ := strings.Cut(rest, " ")
	if label == "<no value>" {
		label = ""
	}
	ri := RegistryInfo{Exists: true, Running: running == "true", Label: strings.TrimSpace(label)}
	for _, n := range strings.Split(nets, ",") {
		if n != "" {
			ri.Networks = append(ri.Networks, n)
		}
	}
	return ri, nil
}

// RunRegistry implements RegistryDocker: the volume is created first so
// that it carries the labels too.
func (d DockerCLI) RunRegistry(ctx context.Context, r RegistryRun) error {
	var labels []string
	for k, v := range r.Labels {
		labels = append(labels, "--label", k+"="+v)
	}
	if _, err := d.run(ctx, append(append([]string{"volume", "create"}, labels...), r.Volume)...); err != nil {
		return err
	}
	args := []string{"run", "-d", "--name", r.Name, "--restart", "unless-stopped", "--network", r.Network,
		"-p", "127.0.0.1:" + strconv.Itoa(r.HostPort) + ":" + strconv.Itoa(registryContainerPort),
		"-v", r.Volume + ":" + registryDataDir}
	args = append(append(args, labels...), r.Image)
	_, err := d.run(ctx, args...)
	return err
}

// Start implements RegistryDocker.
func (d DockerCLI) Start(ctx context.Context, name string) error {
	_, err := d.run(ctx, "start", name)
	return err
}

// Connect implements RegistryDocker.
func (d DockerCLI) Connect(ctx context.Context, network, name string) error {
	_, err := d.run(ctx, "network", "connect", network, name)
	return err
}

// Remove implements RegistryDocker.
func (d DockerCLI) Remove(ctx context.Context, name string) error {
	_, err := d.run(ctx, "rm", "-f", name)
	return err
}

// VolumeLabel implements RegistryDocker.
func (d DockerCLI) VolumeLabel(ctx context.Context, volume, label string) (string, bool, error) {
	out, err := d.run(ctx, "volume", "inspect", "--format", fmt.Sprintf(`{{index .Labels %q}}`, label), volume)
	if err != nil {
		if ctx.Err() == nil && isNoSuch(err) {
			return "", false, nil
		}
		return "", false, err
	}
	v := strings.TrimSpace(out)
	if v == "<no value>" {
		v = ""
	}
	return v, true, nil
}

// RemoveVolume implements RegistryDocker.
func (d DockerCLI) RemoveVolume(ctx context.Context, volume string) error {
	_, err := d.run(ctx, "volume", "rm", volume)
	return err
}

// ReadFile implements RegistryDocker.
func (d DockerCLI) ReadFile(ctx context.Context, container, path string) (string, error) {
	out, err := d.run(ctx, "exec", container, "sh", "-c", `[ ! -e "$1" ] || cat "$1"`, "sh", path)
	return out, err
}

// WriteFile implements RegistryDocker.
func (d DockerCLI) WriteFile(ctx context.Context, container, path, content string) error {
	bin := d.Binary
	if bin == "" {
		bin = "docker"
	}
	cmd := exec.CommandContext(ctx, bin, "exec", "-i", container, "sh", "-c", `mkdir -p "$(dirname "$1")" && cat >"$1"`, "sh", path)
	cmd.Stdin = strings.NewReader(content)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("docker exec %s: writing %s: %w: %s", container, path, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
