.PHONY: images

# images builds (or refreshes) every image the e2e tests need, offline and cached; see e2e/images/README.md.
images:
	bash e2e/setup.sh
