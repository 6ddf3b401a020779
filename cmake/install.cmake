# Installation and packaging: see the next commit.
