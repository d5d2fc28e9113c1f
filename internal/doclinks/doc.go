// Package doclinks checks that the repository's Markdown documents stand on
// their own: every relative link in README.md and docs/ resolves to a file
// (and heading) inside the repository, and nothing points at a sibling
// checkout such as ../shared that a fresh clone does not have.
package doclinks
