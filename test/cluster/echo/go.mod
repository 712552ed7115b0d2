module ironlb.dev/lab/echo

go 1.26
