module example.com/team-auth

go 1.25
