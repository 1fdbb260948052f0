"""Jobs built on the rooms: scoring a model on a task into run folders, a compare's noise floor, `tenser bench`."""
