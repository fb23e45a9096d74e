CREATE TABLE notes (
    id         bigint IDENTITY PRIMARY KEY,
    title      nvarchar(200) NOT NULL,
    body       nvarchar(max) NOT NULL DEFAULT N'',
    created_at datetimeoffset NOT NULL DEFAULT SYSDATETIMEOFFSET()
);

CREATE TABLE tags (
    id   bigint IDENTITY PRIMARY KEY,
    name nvarchar(50) NOT NULL CONSTRAINT ux_tags_name UNIQUE
);

CREATE TABLE note_tags (
    note_id bigint NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    tag_id  bigint NOT NULL REFERENCES tags (id),
    PRIMARY KEY (note_id, tag_id)
);
