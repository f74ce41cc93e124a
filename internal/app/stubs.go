package app

import (
	"context"

	"github.com/spf13/cobra"
)

type logTailOptions struct{}

func runLogTail(ctx context.Context, s *session, o logTailOptions) error { <-ctx.Done(); return nil }

func newLogsCommand(g *globals) *cobra.Command   { return &cobra.Command{Use: "logs"} }
