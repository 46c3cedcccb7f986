package ledger

// The worked example in docs/PROTOCOL.md. Changing any of these changes the
// wire format: every existing chain and client would break.
const (
	vectorGenesis   = "3590a22ed544eb1ed89637c6983374c13e2ab132a488b5845f59e7b2d9309d8b"
	vectorAuthor    = "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB"
	vectorHash      = "7b1de5697394ff5336b426f2e8709b1d54b3e7c452396b01276f588dbcbe8b2d"
	vectorSignature = "2d2664e47b008fc87a72c787eb938e8db76bacb4e26d91970713ed91265ef9aafe659888f851d8487183dfd8d365145544455a2fb2873e92c26378e05269270f"
)
