package ledger

import (
	"errors"
	"fmt"
)

// ErrorCode identifies the rule a block broke, so callers can tell a forged
// block from one that merely arrived early without matching strings.
type ErrorCode int

const (
	// ErrMalformed: a field is missing or has the wrong shape.
	ErrMalformed ErrorCode = iota + 1
	// ErrOversize: the data is longer than MaxDataBytes.
	ErrOversize
	// ErrBadHash: the hash field is not the hash of the block's contents.
	ErrBadHash
	// ErrBadAuthor: the author is not an Ed25519 peer ID.
	ErrBadAuthor
	// ErrBadSignature: the signature does not verify under the author's key.
	ErrBadSignature
	// ErrBadIndex: the index is not the parent's index plus one.
	ErrBadIndex
	// ErrGenesis: the block claims to be a genesis block.
	ErrGenesis
	// ErrUnknownParent: the parent is not known (yet); the block is held.
	ErrUnknownParent
	// ErrFutureTimestamp: the timestamp is too far ahead of this node's clock.
	ErrFutureTimestamp
	// ErrDuplicate: the block is already in the chain.
	ErrDuplicate
	// ErrUnknownAuthor: the chain admits only listed authors, and the
	// block's author is not one of them.
	ErrUnknownAuthor
	// ErrTooDeep: adopting the block would reorganise more main-chain blocks
	// than the finality depth allows.
	ErrTooDeep
)

var codeNames = map[ErrorCode]string{
	ErrMalformed:       "malformed",
	ErrOversize:        "oversize",
	ErrBadHash:         "invalid_hash",
	ErrBadAuthor:       "bad_author",
	ErrBadSignature:    "bad_signature",
	ErrBadIndex:        "bad_index",
	ErrGenesis:         "genesis",
	ErrUnknownParent:   "unknown_parent",
	ErrFutureTimestamp: "future_timestamp",
	ErrDuplicate:       "duplicate",
	ErrUnknownAuthor:   "unknown_author",
	ErrTooDeep:         "reorg_too_deep",
}

// String returns the code's short snake_case name, usable as a counter label.
func (c ErrorCode) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code_%d", int(c))
}

// Provable reports whether a block failing with this code proves that whoever
// sent it broke the protocol (gossip REJECT), as opposed to a block that is
// only early or already known (gossip IGNORE).
func (c ErrorCode) Provable() bool {
	switch c {
	case ErrUnknownParent, ErrFutureTimestamp, ErrDuplicate, ErrTooDeep:
		// A branch that forks below the finality depth is valid, only
		// refused here: a peer may hold it honestly after a long split.
		return false
	}
	return true
}

// RuleError is a block that broke a chain rule.
type RuleError struct {
	Code        ErrorCode
	Description string
	branch      *RefusedBranch // ErrTooDeep: what was refused (Refused)
}

func (e RuleError) Error() string { return e.Description }

func ruleError(c ErrorCode, format string, args ...any) error {
	return RuleError{Code: c, Description: fmt.Sprintf(format, args...)}
}

// Code returns the rule code of err, or 0 if err is not a RuleError.
func Code(err error) ErrorCode {
	var re RuleError
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
