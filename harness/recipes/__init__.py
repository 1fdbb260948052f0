"""Jobs built on the rooms: scoring a model on a task into run folders (resumable jobs), a compare's folder and its training seeds, the noise floor, `tenser bench`."""
